"""nbval collects every notebook here; the KV-cache study's (11) needs the KV environment
(transformers), so it runs under `make kv-test` and is left out where transformers is missing."""

import importlib.util

collect_ignore = [] if importlib.util.find_spec("transformers") else ["11_kv_cache.ipynb"]
