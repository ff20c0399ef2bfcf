"""Prompt parsers on the real GenEval/DrawBench files, on every supported layout and on malformed input;
the c2i class-id sampler; the ImageNet folder reader."""

import collections
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dataset.imagenet import ImageNetFolder, class_ids_for_process, class_ids_for_step, process_slice
from dataset.prompts import (
    PromptFileError,
    detect_format,
    load_drawbench,
    load_geneval_metadata,
    load_object_names,
    load_prompts,
)

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
GENEVAL_METADATA = SHARED_DATA / "geneval" / "evaluation_metadata.jsonl"
GENEVAL_OBJECTS = SHARED_DATA / "geneval" / "object_names.txt"
DRAWBENCH_1000 = SHARED_DATA / "drawbench" / "drawbench_test_1000.json"
GENEVAL_TAGS = {"single_object", "two_object", "counting", "colors", "position", "color_attr"}


def _need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"reference data {path.name} not found in the shared folder beside the checkout")
    return path


# ---------------------------------------------------------------- real files


def test_geneval_metadata_real_file_lines_kept_verbatim():
    path = _need(GENEVAL_METADATA)
    lines = path.read_text(encoding="utf-8").splitlines()
    entries = load_geneval_metadata(path)
    assert len(entries) == len(lines) == 553  # GenEval's 553 prompts
    assert [e.raw_line for e in entries] == lines
    assert [e.line for e in entries] == list(range(1, 554))
    for entry, line in zip(entries, lines):
        assert entry.metadata == json.loads(line)
        assert entry.prompt == entry.metadata["prompt"] and entry.tag == entry.metadata["tag"]
    tags = collections.Counter(e.tag for e in entries)
    assert set(tags) == GENEVAL_TAGS
    assert tags == collections.Counter(json.loads(line)["tag"] for line in lines)
    assert sum(1 for e in entries if "exclude" in e.metadata) > 0


def test_geneval_object_names_cover_every_metadata_class():
    names = load_object_names(_need(GENEVAL_OBJECTS))
    assert len(names) == 80 == len(set(names))  # the 80 COCO detector classes
    assert names[:3] == ["person", "bicycle", "car"]
    used = {spec["class"] for e in load_geneval_metadata(_need(GENEVAL_METADATA))
            for key in ("include", "exclude") for spec in e.metadata.get(key, [])}
    assert used <= set(names)


def test_load_prompts_reads_geneval_jsonl_with_tags():
    path = _need(GENEVAL_METADATA)
    records = load_prompts(path)
    lines = path.read_text(encoding="utf-8").splitlines()
    assert len(records) == 553
    assert [r.text for r in records] == [json.loads(line)["prompt"] for line in lines]
    assert all(r.metadata["tag"] in GENEVAL_TAGS for r in records)
    assert records[10].metadata["raw_line"] == lines[10]
    assert records[10].metadata["index"] == 10 and records[10].metadata["line"] == 11
    assert all(r.metadata["geneval"] == json.loads(line) for r, line in zip(records, lines))


def test_drawbench_real_file_is_200_prompts_repeated_5_times():
    path = _need(DRAWBENCH_1000)
    raw = json.loads(path.read_text(encoding="utf-8"))
    every = load_drawbench(path, dedupe=False)
    assert len(every) == len(raw) == 1000
    assert [r.text for r in every] == [rec["conversations"][0]["value"] for rec in raw]
    assert load_prompts(path)[5].text == every[5].text

    unique = load_drawbench(path)
    assert len(unique) == 200 == len({r.text for r in unique})
    assert all(r.metadata["repeats"] == 5 for r in unique)
    assert [r.metadata["index"] for r in unique] == list(range(200))
    ids = [i for r in unique for i in r.metadata["ids"]]
    assert sorted(ids) == sorted(rec["id"] for rec in raw) and len(set(ids)) == 1000
    # first-occurrence order, and every id really holds that prompt
    first_seen = list(dict.fromkeys(rec["conversations"][0]["value"] for rec in raw))
    assert [r.text for r in unique] == first_seen
    by_id = {rec["id"]: rec["conversations"][0]["value"] for rec in raw}
    assert all(by_id[i] == r.text for r in unique for i in r.metadata["ids"])


# ---------------------------------------------------------------- layouts


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_txt_one_prompt_per_line_skips_blank_lines(tmp_path):
    path = _write(tmp_path, "p.txt", "a red cube\n\n  a café in the rain \nthird\n\n")
    records = load_prompts(path)
    assert [r.text for r in records] == ["a red cube", "  a café in the rain ", "third"]
    assert [r.metadata["line"] for r in records] == [1, 3, 4]
    assert [r.metadata["index"] for r in records] == [0, 1, 2]


def test_json_list_of_strings_and_prompt_objects(tmp_path):
    strings = _write(tmp_path, "s.json", json.dumps(["one", "two"]))
    assert [r.text for r in load_prompts(strings)] == ["one", "two"]
    data = [{"prompt": "x", "tag": "t1", "extra": 3}, {"prompt": "y"}]
    objects = _write(tmp_path, "o.json", json.dumps(data, indent=2))
    records = load_prompts(objects)
    assert [r.text for r in records] == ["x", "y"]
    assert records[0].metadata["tag"] == "t1" and records[0].metadata["record"]["extra"] == 3
    assert "tag" not in records[1].metadata
    assert [r.metadata["line"] for r in records] == [2, 7]


def test_upstream_conversation_records(tmp_path):
    data = [{"id": f"q{i}",
             "conversations": [{"from": "human", "value": f"prompt {i}"}, {"from": "gpt", "value": ""}],
             "geneval_json": {"tag": "counting"} if i == 1 else None} for i in range(3)]
    path = _write(tmp_path, "train.json", json.dumps(data, indent=4))
    records = load_prompts(path)
    assert [r.text for r in records] == ["prompt 0", "prompt 1", "prompt 2"]
    assert records[1].metadata["record"] == data[1]
    assert records[1].metadata["geneval"] == {"tag": "counting"} and "geneval" not in records[0].metadata
    text = path.read_text()
    record_starts = [text[:text.index(f'"q{i}"')].count("\n") for i in range(3)]  # the "{" line before "id"
    assert [r.metadata["line"] for r in records] == record_starts


def test_line_numbers_of_a_large_pretty_printed_array(tmp_path):
    data = [{"id": i, "conversations": [{"from": "human", "value": f"caption {i}"}]} for i in range(3000)]
    path = _write(tmp_path, "big.json", json.dumps(data, indent=1))
    lines = path.read_text().splitlines()
    starts = [n for n, line in enumerate(lines, start=1) if line == " {"]
    records = load_prompts(path)
    assert [r.text for r in records] == [f"caption {i}" for i in range(3000)]
    assert [r.metadata["line"] for r in records] == starts


def test_jsonl_of_strings_and_records(tmp_path):
    path = _write(tmp_path, "p.jsonl", '"plain string"\n\n{"prompt": "obj", "tag": "colors"}\n')
    records = load_prompts(path)
    assert [r.text for r in records] == ["plain string", "obj"]
    assert [r.metadata["line"] for r in records] == [1, 3]
    assert records[1].metadata["raw_line"] == '{"prompt": "obj", "tag": "colors"}'


def test_csv_with_caption_column(tmp_path):
    path = _write(tmp_path, "c.csv", 'id,Caption\n1,"a dog, running"\n2,"two\nlines"\n3,last\n')
    records = load_prompts(path)
    assert [r.text for r in records] == ["a dog, running", "two\nlines", "last"]
    assert [r.metadata["line"] for r in records] == [2, 3, 5]
    assert records[2].metadata["record"] == {"id": "3"}


def test_format_detected_from_content_when_suffix_is_unknown(tmp_path):
    assert detect_format("x.dat", '  [ "a" ]') == "json"
    assert detect_format("x.dat", '{"prompt": "a"}') == "jsonl"
    assert detect_format("x.dat", "hello") == "txt"
    assert detect_format("x.json", '{"prompt": "a"}\n{"prompt": "b"}') == "jsonl"
    assert detect_format("x.txt", '["not json for a txt file"]') == "txt"
    path = _write(tmp_path, "prompts.data", '["a", "b"]')
    assert [r.text for r in load_prompts(path)] == ["a", "b"]


def test_drawbench_csv_keeps_categories_and_merges_repeats(tmp_path):
    # The Imagen sheet's CSV export quotes every field.
    text = '"Prompts","Category"\n"A red colored car.","Colors"\n"Tcennis rpacket.","Misspellings"\n' \
           '"A red colored car.","Colors"\n'
    path = _write(tmp_path, "drawbench.csv", text)
    every = load_drawbench(path, dedupe=False)
    assert [(r.text, r.metadata["category"]) for r in every] == [
        ("A red colored car.", "Colors"), ("Tcennis rpacket.", "Misspellings"),
        ("A red colored car.", "Colors")]
    unique = load_drawbench(path)
    assert [r.text for r in unique] == ["A red colored car.", "Tcennis rpacket."]
    assert unique[0].metadata["repeats"] == 2 and unique[0].metadata["lines"] == [2, 4]
    assert unique[0].metadata["category"] == "Colors"


# ---------------------------------------------------------------- malformed input

MALFORMED = [
    ("empty.jsonl", "", None, "empty file"),
    ("blank.txt", "\n  \n", None, "empty file"),
    ("bad.jsonl", '{"prompt": "a"}\n{"prompt": "b"}\n{"prompt": "c",,}\n', 3, "bad JSON line"),
    ("nofield.jsonl", '{"prompt": "a"}\n{"caption": "b", "tag": "x"}\n', 2, "no prompt field"),
    ("emptyprompt.jsonl", '{"prompt": "a"}\n\n{"prompt": "   "}\n', 3, "is empty"),
    ("wrongtype.jsonl", '{"prompt": 5}\n', 1, "must be a string, got int"),
    ("number.jsonl", '{"prompt": "a"}\n7\n', 2, "expected a prompt string or an object"),
    ("list_missing.json", '[\n  {"prompt": "a"},\n  {"text": "b"}\n]', 3, "no prompt field"),
    ("list_type.json", '[\n  "a",\n  null\n]', 3, "got NoneType"),
    ("unclosed.json", '[\n  "a",\n  "b"\n', 4, "not closed"),
    ("trailing_comma.json", '[\n  "a",\n]', 3, "bad JSON"),
    ("bad_inside.json", '[\n  "a",\n  {"prompt": "b" "x"}\n]', 3, "bad JSON"),
    ("empty_list.json", "[]", None, "no prompts found"),
    ("extra.json", '["a"]\n["b"]', 2, "extra data"),
    ("from_gpt.json", json.dumps([{"conversations": [{"from": "gpt", "value": "a"}]}]), 1, "'gpt'"),
    ("no_turns.json", json.dumps([{"conversations": []}]), 1, "non-empty list"),
    ("one_object.json", '{\n  "prompts": ["a", "b"]\n}\n', 1, "one JSON object"),
    ("odd.json", "prompt one\nprompt two\n", 1, "must start with"),
    ("nocol.csv", "id,label\n1,x\n", 1, "no prompt column"),
    ("nocol_norows.csv", "<html>sign in</html>\n", 1, "no prompt column"),
    ("emptycell.csv", "prompt,tag\na,1\n,2\n", 3, "is empty"),
]


@pytest.mark.parametrize("name,text,line,reason", MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed_files_name_file_line_and_problem(tmp_path, name, text, line, reason):
    path = _write(tmp_path, name, text)
    with pytest.raises(PromptFileError) as info:
        load_prompts(path)
    err = info.value
    assert err.path == str(path) and err.line == line
    assert reason in str(err)
    assert str(err).startswith(f"{path}:{line}:" if line is not None else f"{path}:")


def test_missing_and_undecodable_files(tmp_path):
    with pytest.raises(PromptFileError, match="file not found"):
        load_prompts(tmp_path / "nope.json")
    path = tmp_path / "latin1.txt"
    path.write_bytes(b"fine\ncaf\xe9\n")
    with pytest.raises(PromptFileError, match=r"latin1.txt:2: not valid UTF-8"):
        load_prompts(path)


GENEVAL_BAD = [
    ('{"tag": "colors", "include": [{"class": "cat", "count": 1}]}', "no 'prompt'"),
    ('{"prompt": "a cat", "include": [{"class": "cat", "count": 1}]}', "'tag'"),
    ('{"prompt": "a cat", "tag": "colors"}', "no 'include'"),
    ('{"prompt": "a cat", "tag": "colors", "include": []}', "non-empty list"),
    ('{"prompt": "a cat", "tag": "colors", "include": [{"class": "cat", "count": "1"}]}', "integer 'count'"),
    ('{"prompt": "a cat", "tag": "colors", "include": [{"count": 1}]}', "string 'class'"),
    ('{"prompt": "a cat", "tag": "x", "include": [{"class": "cat", "count": 1}], "exclude": [{"class": 3}]}',
     "'exclude'"),
    ('["a cat"]', "must be a JSON object"),
    ('{"prompt": "a cat", "tag": "x", "include": [{"class": "cat", "count": 1}]', "bad JSON line"),
]


@pytest.mark.parametrize("bad_line,reason", GENEVAL_BAD)
def test_geneval_metadata_errors_name_the_line(tmp_path, bad_line, reason):
    good = '{"tag": "single_object", "include": [{"class": "bench", "count": 1}], "prompt": "a bench"}'
    path = _write(tmp_path, "evaluation_metadata.jsonl", f"{good}\n{good}\n{bad_line}\n")
    with pytest.raises(PromptFileError) as info:
        load_geneval_metadata(path)
    assert info.value.line == 3 and reason in str(info.value) and str(path) in str(info.value)


def test_object_names_errors(tmp_path):
    assert load_object_names(_write(tmp_path, "ok.txt", "person\ncar\n\n")) == ["person", "car"]
    with pytest.raises(PromptFileError, match=r"dup.txt:3: object name 'car' repeats line 2"):
        load_object_names(_write(tmp_path, "dup.txt", "person\ncar\ncar\n"))
    with pytest.raises(PromptFileError, match=r"gap.txt:2: blank line"):
        load_object_names(_write(tmp_path, "gap.txt", "person\n\ncar\n"))
    with pytest.raises(PromptFileError, match="no object names"):
        load_object_names(_write(tmp_path, "none.txt", "\n"))


def test_drawbench_csv_errors(tmp_path):
    with pytest.raises(PromptFileError, match=r"db.csv:1: no prompt column: expected a 'prompts' / 'prompt'"):
        load_drawbench(_write(tmp_path, "db.csv", "Text,Category\na,b\n"))
    with pytest.raises(PromptFileError, match=r"db2.csv:3: column 'prompts' is empty"):
        load_drawbench(_write(tmp_path, "db2.csv", "Prompts,Category\na,b\n,c\n"))
    with pytest.raises(PromptFileError, match=r"db3.csv:2: row has 3 fields"):
        load_drawbench(_write(tmp_path, "db3.csv", "Prompts,Category\na,b,c\n"))


# ---------------------------------------------------------------- c2i class ids


def test_class_ids_are_a_pure_function_of_seed_and_step():
    first = class_ids_for_step(seed=3, step=7, batch_size=64)
    np.random.seed(123)  # global RNG state must not matter
    assert class_ids_for_step(3, 7, 64) == first
    assert class_ids_for_step(3, 8, 64) != first
    assert class_ids_for_step(4, 7, 64) != first
    assert all(isinstance(i, int) and 0 <= i < 1000 for i in first)
    # asking for steps in any order gives the same ids (no hidden state)
    forward = {s: class_ids_for_step(3, s, 8) for s in (2, 5, 9)}
    backward = {s: class_ids_for_step(3, s, 8) for s in (9, 5, 2)}
    assert forward == backward


@pytest.mark.parametrize("num_processes", [1, 2, 4, 8])
def test_process_split_reassembles_the_global_batch(num_processes):
    for step in range(5):
        full = class_ids_for_step(seed=11, step=step, batch_size=32, num_classes=10)
        parts = [class_ids_for_process(11, step, 32, rank, num_processes, num_classes=10)
                 for rank in range(num_processes)]
        assert all(len(p) == 32 // num_processes for p in parts)
        assert [i for part in parts for i in part] == full


def test_class_ids_are_uniform():
    draws = np.concatenate([class_ids_for_step(0, step, 200) for step in range(500)])
    counts = np.bincount(draws, minlength=1000)
    assert counts.size == 1000 and draws.min() >= 0
    expected = draws.size / 1000
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    # chi-square with 999 degrees of freedom: mean 999, sd ~44.7; 6 sd either side
    assert 999 - 6 * 44.7 < chi2 < 999 + 6 * 44.7


def test_class_id_argument_errors():
    with pytest.raises(ValueError, match="cannot be split evenly over 3 processes"):
        process_slice(list(range(10)), 0, 3)
    with pytest.raises(ValueError, match="process_index"):
        process_slice(list(range(10)), 2, 2)
    with pytest.raises(ValueError, match="seed"):
        class_ids_for_step(-1, 0, 4)
    with pytest.raises(ValueError, match="num_classes"):
        class_ids_for_step(0, 0, 4, num_classes=0)


# ---------------------------------------------------------------- ImageNet folder


def _make_imagenet(root: Path, wnids: dict[str, int]) -> None:
    for wnid, count in wnids.items():
        folder = root / "train" / wnid
        folder.mkdir(parents=True)
        for i in range(count):
            Image.new("RGB", (6, 4), (i * 40, 0, 0)).save(folder / f"{wnid}_{i}.JPEG")
        (folder / "notes.txt").write_text("not an image")


def test_imagenet_folder_labels_follow_sorted_wnids(tmp_path):
    _make_imagenet(tmp_path, {"n02000000": 2, "n01000000": 3, "n03000000": 1})
    data = ImageNetFolder(tmp_path, expected_num_classes=3)
    assert data.wnids == ["n01000000", "n02000000", "n03000000"] and data.num_classes == 3
    assert data._samples is None  # files are listed on first use only
    assert len(data) == 6
    assert data.labels == [0, 0, 0, 1, 1, 2]
    path, label = data[3]
    assert path == tmp_path / "train" / "n02000000" / "n02000000_0.JPEG" and label == 1
    image = data.load_image(5)
    assert image.mode == "RGB" and image.size == (6, 4)


def test_imagenet_folder_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        ImageNetFolder(tmp_path / "missing")
    _make_imagenet(tmp_path / "inet", {"n01000000": 1, "n02000000": 1})
    with pytest.raises(FileNotFoundError, match="pass its parent folder"):
        ImageNetFolder(tmp_path / "inet" / "train", expected_num_classes=2)
    with pytest.raises(ValueError, match="has 2 class folders, expected 1000"):
        ImageNetFolder(tmp_path / "inet")
    (tmp_path / "inet" / "train" / "cats").mkdir()
    with pytest.raises(ValueError, match=r"not ImageNet wnids .*\['cats'\]"):
        ImageNetFolder(tmp_path / "inet", expected_num_classes=3)
    (tmp_path / "inet" / "train" / "cats").rmdir()
    (tmp_path / "inet" / "train" / "n03000000").mkdir()
    data = ImageNetFolder(tmp_path / "inet", expected_num_classes=3)
    with pytest.raises(ValueError, match="n03000000 has no images"):
        len(data)


def test_oversized_prompts_and_files_are_refused_naming_file_and_line(tmp_path):
    from dataset.prompt_files import MAX_PROMPT_CHARS

    path = tmp_path / "huge.jsonl"
    path.write_text('{"prompt": "a cat"}\n{"prompt": "' + "x" * (20 * 2**20) + '"}\n')  # 20 MB on one line
    with pytest.raises(PromptFileError) as info:
        load_prompts(path)
    assert info.value.line == 2 and f"more than the {MAX_PROMPT_CHARS} allowed" in str(info.value)
    assert len(str(info.value)) < 500
    with pytest.raises(PromptFileError, match=r"more than the 1000 allowed for a prompt file"):
        load_prompts(path, max_bytes=1000)
    assert [r.text for r in load_prompts(path, max_chars=30 * 2**20)][0] == "a cat"
