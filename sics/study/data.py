"""A study's data: loaded on first use, and checked against the committed bundle's record; while
they are not loaded, the facts recorded about them (sizes, source) are read from that record, so
a study whose every result is saved never touches the dataset."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..config import Profile
from ..data.registry import batches_of, load_data
from ..errors import DataError

if TYPE_CHECKING:
    from ..data import Cifar10


def check_data(record: dict, data: Cifar10, profile: str) -> None:
    """New evaluations are never mixed with results on other images: `data` must be those the
    bundle's results (its `record`) were measured on."""
    if data.source_id != record.get("data_id") or len(data.test_y) != int(record["n_test"]):
        raise DataError(f"the committed results of profile {profile} were measured on "
                        f"{record.get('data')} ({record['n_test']} test images); {data.source} "
                        "is different data: give that data, or use another profile")  # fmt: skip


class StudyData:
    """The profile's train split and test subset from `spec` (`data.registry`), loaded on first
    use; `record` is the committed bundle's meta (None without a bundle)."""

    def __init__(self, profile: Profile, spec: str | None, record: dict | None = None, loaded: Cifar10 | None = None):
        self.profile, self.spec, self.record = profile, spec, record
        self._data, self._test = loaded, None

    @property
    def data(self) -> Cifar10:
        """The data, loaded now if not yet (and checked against the record)."""
        if self._data is None:
            try:
                data = load_data(self.profile, self.spec)
            except DataError as e:
                if self.record is None:
                    raise
                raise DataError(f"{e} (a result the committed bundle does not hold needs evaluating)") from None
            if self.record is not None:
                check_data(self.record, data, self.profile.name)
            self._data = data
        return self._data

    def test(self, device: Any):
        """The test subset on `device`, batched as the profile's dataset batches it."""
        if self._test is None:
            self._test = batches_of(self.data.test_x, self.data.test_y, self.profile, device)
        return self._test

    @property
    def loaded(self) -> bool:
        return self._data is not None

    def _fact(self, key: str, from_data):
        if self._data is None and self.record is not None:
            return self.record[key]
        return from_data(self.data)

    @property
    def n_test(self) -> int:
        return int(self._fact("n_test", lambda d: len(d.test_y)))

    @property
    def n_train(self) -> int:
        return int(self._fact("n_train", lambda d: len(d.train_y)))

    @property
    def source(self) -> str:
        """The data the results are measured on (human-readable), as recorded."""
        return str(self._fact("data", lambda d: d.source))

    @property
    def source_id(self) -> str:
        return str(self._fact("data_id", lambda d: d.source_id))
