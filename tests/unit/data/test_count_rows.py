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
