"""The KV-cache study's language model: transformers' `LlamaForCausalLM` from an `LMConfig`
(imported only here: transformers is the `kv` extra's, kept out of the main environment)."""

from __future__ import annotations

from ..config import Profile
from ..errors import ParameterError


def llama_config(profile: Profile, attention: str | None = None):
    """The transformers config of the profile's LM (`attention` overrides the pinned one)."""
    try:
        from transformers import LlamaConfig
    except ImportError:
        raise ParameterError("the language models need transformers: make kv-env (or pip install -e '.[kv]')") from None
    m = profile.model
    if m.d_model % m.n_head or m.n_head % m.n_kv_head:
        raise ParameterError(f"d_model {m.d_model} must split into {m.n_head} heads, and those into {m.n_kv_head} kv heads")
    return LlamaConfig(vocab_size=m.vocab_size, hidden_size=m.d_model, intermediate_size=m.d_ff,
                       num_hidden_layers=m.n_layer, num_attention_heads=m.n_head, num_key_value_heads=m.n_kv_head,
                       max_position_embeddings=m.sequence, rope_theta=m.rope_theta, tie_word_embeddings=False,
                       attention_dropout=0.0, attn_implementation=attention or m.attention,
                       bos_token_id=None, eos_token_id=None, pad_token_id=None)  # fmt: skip


def build(profile: Profile, weights=None):
    """A randomly initialised LM of the profile's config (the train seed sets the draw)."""
    try:
        from transformers import LlamaForCausalLM
    except ImportError:
        raise ParameterError("the language models need transformers: make kv-env (or pip install -e '.[kv]')") from None
    if weights is not None:
        raise ParameterError("the language models train from scratch: no pretrained weights")
    return LlamaForCausalLM(llama_config(profile))
