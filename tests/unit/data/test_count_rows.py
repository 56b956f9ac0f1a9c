"""pull-data's row count: streamed, and the same number pandas reads."""

import pandas as pd
import pytest

from slipway.data import count_rows, read_table
from slipway.data.synth import write_synthetic_table


@pytest.mark.parametrize(
    "text",
    [
        'a,b\n1,"two\nlines"\n3,x\n',  # a quoted newline stays in its record
        "\ufeffa,b\r\n1,2\r\n\r\n3,4\r\n\r\n",  # BOM, CRLF, blank lines skipped as pandas does
        "a,b\n,\n1,2",  # a row of empty cells counts; no final newline
        "a,b\n",  # header only
    ],
)
def test_csv_rows_match_pandas(tmp_path, text):
    path = tmp_path / "t.csv"
    path.write_bytes(text.encode())
    assert count_rows(path) == len(pd.read_csv(path, encoding="utf-8-sig"))


def test_parquet_rows_come_from_the_footer(tmp_path):
    path = write_synthetic_table(tmp_path / "t.parquet", 70_000, features=8)
    assert count_rows(path) == 70_000 == len(read_table(path)[0])


def test_read_csv_reads_a_parquet_version_as_the_same_frame(tmp_path):
    from slipway.data import read_csv

    path = write_synthetic_table(tmp_path / "v1.parquet", 500, features=8)
    frame = read_csv(path)
    pd.testing.assert_frame_equal(frame, read_table(path)[0])
    assert frame.shape == (500, 9)


def test_parquet_is_read_as_pyarrow_reads_it_with_or_without_pandas_metadata(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    plain = write_synthetic_table(tmp_path / "plain.parquet", 3_000, features=10)
    assert pq.read_schema(plain).pandas_metadata is None
    expected = pq.read_table(plain).to_pandas()
    pd.testing.assert_frame_equal(read_table(plain)[0], expected)
    framed = pd.DataFrame(
        {"n": pd.array([1, None, 3], dtype="Int64"), "c": pd.Categorical(["a", "b", "a"])},
        index=pd.Index([10, 20, 30], name="id"),
    )
    path = tmp_path / "pandas.parquet"
    pq.write_table(pa.Table.from_pandas(framed), path)
    pd.testing.assert_frame_equal(read_table(path)[0], framed)  # index and dtypes restored
