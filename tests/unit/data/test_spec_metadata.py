"""The spec travels in a Dataset artifact's metadata; steps read the table through load_frame."""

import pandas as pd
import pytest

from slipway.data import (
    build_dataset,
    dataset_spec,
    load_dataset_spec,
    load_frame,
    spec_from_metadata,
    spec_to_metadata,
)
from slipway.errors import DatasetSpecError, DatasetValidationError
from tests.support import REPO

SPEC = load_dataset_spec(REPO / "data" / "breast-cancer" / "dataset.yaml")


def test_spec_round_trips_through_json_metadata():
    import json

    metadata = json.loads(json.dumps({"version": "v1", "spec": spec_to_metadata(SPEC)}))
    assert spec_from_metadata(metadata) == SPEC


def test_spec_survives_kfp_metadata_where_every_number_is_a_double():
    from google.protobuf import json_format, struct_pb2

    struct = struct_pb2.Struct()
    struct.update({"spec": spec_to_metadata(SPEC)})
    metadata = json_format.MessageToDict(struct)
    assert metadata["spec"]["min_rows"] == 100.0  # what a KFP step receives
    again = spec_from_metadata(metadata)
    assert again == SPEC
    assert again.classes == [0, 1]
    assert isinstance(again.min_rows, int)


def test_metadata_without_a_spec_names_the_fix():
    with pytest.raises(DatasetSpecError, match="rerun the whole pipeline"):
        spec_from_metadata({"version": "v1"})


def test_load_frame_reads_parquet_and_csv_alike(tmp_path):
    frame = build_dataset(dataset_spec("v1")).head(20)  # the CSVs are not in git
    frame.to_parquet(tmp_path / "t.parquet")
    (tmp_path / "t.csv").write_bytes(b"\xef\xbb\xbf" + frame.to_csv(index=False).encode())
    from_parquet = load_frame(tmp_path / "t.parquet", SPEC)
    from_csv = load_frame(tmp_path / "t.csv", SPEC)
    pd.testing.assert_frame_equal(from_parquet, from_csv)
    assert from_csv[SPEC.feature_names].dtypes.eq("float64").all()


def test_load_frame_without_the_target_fails(tmp_path):
    pd.DataFrame({"a": [1.0]}).to_csv(tmp_path / "t.csv", index=False)
    with pytest.raises(DatasetValidationError, match="diagnosis"):
        load_frame(tmp_path / "t.csv", SPEC)
