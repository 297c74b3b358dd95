"""A study's provenance record (`provenance.StudyRecord`): read off the live study once, so that
provenance, captions and stage records see facts, not the study."""

from __future__ import annotations

from ..models import geometry
from ..provenance import StudyRecord, device_name, git_revision


def study_record(study) -> StudyRecord:
    """The record of `study` now (its results so far, where this process evaluates)."""
    p = study.profile
    unit = "" if study.unit.name == p.unit else f", unit={study.unit.tag}"
    run = f", run {p.train_seed}" if p.train_seed else ""
    bundle = study.bundle
    labels = tuple(bundle.meta.get("measured_on") or ["unknown (bundle)"]) if bundle is not None else ()
    return StudyRecord(
        profile=p.name, model=f"{geometry(p)}{unit}{run}", data=study.inputs.source, n_test=study.n_test,
        bundle_measured_on=labels, measured_here=study.results.measured_locally, device=device_name(study.where.type),
        precision=study.where.precision, precision_label=study.where.precision_label,
        ckpt_id=study.trained.ckpt_id, revision=study.results_revision() or git_revision(), unit=study.unit.tag,
        data_loaded=study.inputs.loaded, dense_accuracy=study.dense_accuracy, train_seed=p.train_seed,
        trained_now=study.trained.trained_now, weights_sha256=study.trained.weights_sha256,
        train_seconds=study.trained.train_seconds,
    )  # fmt: skip
