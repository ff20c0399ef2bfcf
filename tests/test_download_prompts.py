"""The prompt downloader against a real HTTP server on 127.0.0.1 (good, missing, truncated, slow, refused),
and the seeded COCO caption sampler on small synthetic annotations."""

import hashlib
import io
import json
import random
import socket
import subprocess
import threading
import time
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from dataset import download_prompts
from dataset.coco_captions import read_json_from_zip, sample_coco_captions, to_conversation_records
from dataset.downloads import DownloadError, download_file, write_text_atomically
from dataset.prompts import load_drawbench, load_geneval_metadata, load_object_names, load_prompts

SHARED_GENEVAL = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "geneval"

GENEVAL_LINES = [
    '{"tag": "single_object", "include": [{"class": "bench", "count": 1}], "prompt": "a photo of a bench"}',
    '{"tag": "counting", "include": [{"class": "cat", "count": 2}], '
    '"exclude": [{"class": "cat", "count": 3}], "prompt": "a photo of two cats"}',
]
DRAWBENCH_CSV = '"Prompts","Category"\n"A red colored car.","Colors"\n"Tcennis rpacket.","Misspellings"\n'


# ---------------------------------------------------------------- a small real HTTP server


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 (http.server's naming)
        self.server.requests.append(self.path)
        route = self.server.routes.get(self.path)
        if route is None:
            self.send_error(404, "Not Found")
            return
        kind, body = route
        if kind == "slow":
            time.sleep(2.0)
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        # "truncated" promises twice the bytes it sends, then hangs up.
        self.send_header("Content-Length", str(len(body) * (2 if kind == "truncated" else 1)))
        self.end_headers()
        self.wfile.write(body)
        if kind == "truncated":
            self.close_connection = True

    def log_message(self, *args):
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        # A client that gave up (the timeout case) makes the late write fail; that is expected here.
        pass


@pytest.fixture
def server():
    httpd = _Server(("127.0.0.1", 0), _Handler)
    httpd.routes = {}
    httpd.requests = []
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    httpd.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def _refused_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/evaluation_metadata.jsonl"


def _files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def _coco_zip(num_images: int = 30, captions_per_image: int = 3, split: str = "val",
              year: int = 2014) -> bytes:
    annotations = _coco_annotations(num_images, captions_per_image)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(f"annotations/captions_{split}{year}.json", json.dumps(annotations))
        archive.writestr(f"annotations/instances_{split}{year}.json", "{}")
    return buffer.getvalue()


def _coco_annotations(num_images: int, captions_per_image: int) -> dict:
    images = [{"id": 1000 + 7 * i, "file_name": f"COCO_{i:012d}.jpg"} for i in range(num_images)]
    anns = [{"id": 50_000 + 10 * i + j, "image_id": img["id"], "caption": f"image {img['id']} caption {j} \n"}
            for i, img in enumerate(images) for j in range(captions_per_image)]
    return {"info": {}, "images": images, "annotations": anns, "licenses": []}


# ---------------------------------------------------------------- download_file


def test_download_writes_exact_bytes_and_leaves_no_temp_file(server, tmp_path):
    body = ("\n".join(GENEVAL_LINES) + "\n").encode()
    server.routes["/m.jsonl"] = ("ok", body)
    dest = tmp_path / "out" / "evaluation_metadata.jsonl"
    download_file(f"{server.url}/m.jsonl", dest, validate=load_geneval_metadata, progress=False)
    assert dest.read_bytes() == body
    assert _files(tmp_path) == [dest]


@pytest.mark.parametrize("kind,reason", [("missing", "HTTP 404"), ("truncated", "Connection broken"),
                                         ("slow", "no answer within 0.3 s")])
def test_failed_downloads_raise_naming_the_url_and_leave_nothing(server, tmp_path, kind, reason):
    if kind != "missing":
        server.routes["/f.jsonl"] = (kind, ("\n".join(GENEVAL_LINES) + "\n").encode())
    url = f"{server.url}/f.jsonl"
    with pytest.raises(DownloadError) as info:
        download_file(url, tmp_path / "f.jsonl", timeout=0.3, validate=load_geneval_metadata, progress=False)
    assert url in str(info.value) and reason in str(info.value)
    assert _files(tmp_path) == []


def test_connection_refused_names_the_url(tmp_path):
    url = _refused_url()
    with pytest.raises(DownloadError, match="cannot reach the server") as info:
        download_file(url, tmp_path / "x.jsonl", timeout=2, progress=False)
    assert url in str(info.value)
    assert _files(tmp_path) == []


def test_rejected_download_keeps_the_previous_file(server, tmp_path):
    server.routes["/m.jsonl"] = ("ok", b'{"prompt": "a", "tag": "colors", "include": []}\n')
    dest = tmp_path / "evaluation_metadata.jsonl"
    dest.write_text("old content\n")
    url = f"{server.url}/m.jsonl"
    with pytest.raises(DownloadError) as info:
        download_file(url, dest, validate=load_geneval_metadata, progress=False)
    message = str(info.value)
    assert url in message and "not usable" in message and ":1: GenEval 'include'" in message
    assert dest.read_text() == "old content\n" and _files(tmp_path) == [dest]


def test_empty_body_is_an_error(server, tmp_path):
    server.routes["/empty"] = ("ok", b"")
    with pytest.raises(DownloadError, match="empty file"):
        download_file(f"{server.url}/empty", tmp_path / "e.txt", progress=False)
    assert _files(tmp_path) == []


def test_write_text_atomically_validates_before_replacing(tmp_path):
    dest = tmp_path / "p.json"
    write_text_atomically(dest, '["a"]', validate=load_prompts)
    assert [r.text for r in load_prompts(dest)] == ["a"]
    with pytest.raises(DownloadError, match="p.json:1"):
        write_text_atomically(dest, "[1]", validate=load_prompts)
    assert dest.read_text() == '["a"]' and _files(tmp_path) == [dest]


# ---------------------------------------------------------------- the CLI


def _serve_all(server) -> dict[str, str]:
    server.routes.update({
        "/geneval/prompts/evaluation_metadata.jsonl": ("ok", ("\n".join(GENEVAL_LINES) + "\n").encode()),
        "/geneval/prompts/object_names.txt": ("ok", b"person\nbench\ncat\n"),
        "/geneval/LICENSE": ("ok", b"MIT License\n"),
        "/drawbench.csv": ("ok", DRAWBENCH_CSV.encode()),
        "/coco.zip": ("ok", _coco_zip()),
    })
    return {"--geneval-base-url": f"{server.url}/geneval", "--drawbench-sheet-url": f"{server.url}/drawbench.csv",
            "--coco-url": f"{server.url}/coco.zip"}


def _argv(urls: dict[str, str], root: Path, *extra: str) -> list[str]:
    argv = [*extra, "--root", str(root), "--no-progress", "--num-captions", "20", "--seed", "5"]
    for flag, url in urls.items():
        argv += [flag, url]
    return argv


UNPINNED = ("geneval", "drawbench_sheet", "coco")  # the pinned targets need the real files: tested below


def test_cli_fetches_every_target_then_keeps_valid_files(server, tmp_path, capsys):
    urls = _serve_all(server)
    assert download_prompts.main(_argv(urls, tmp_path, *UNPINNED)) == 0
    geneval = tmp_path / "benchmark" / "geneval"
    assert [e.raw_line for e in load_geneval_metadata(geneval / "prompts" / "evaluation_metadata.jsonl")] \
        == GENEVAL_LINES
    assert load_object_names(geneval / "prompts" / "object_names.txt") == ["person", "bench", "cat"]
    assert (geneval / "LICENSE").read_text() == "MIT License\n"
    drawbench = load_drawbench(tmp_path / "benchmark" / "drawbench" / "drawbench.csv")
    assert [r.metadata["category"] for r in drawbench] == ["Colors", "Misspellings"]
    coco = load_prompts(tmp_path / "dataset" / "coco_captions_20.json")
    expected = sample_coco_captions(_coco_annotations(30, 3), num_captions=20, seed=5)
    assert [r.text for r in coco] == [s["caption"] for s in expected]
    assert [r.metadata["record"]["image_id"] for r in coco] == [s["image_id"] for s in expected]
    assert (tmp_path / "dataset" / ".cache" / "annotations_trainval2014.zip").exists()
    assert len(server.requests) == 5

    # A second run finds valid files and downloads nothing.
    capsys.readouterr()
    assert download_prompts.main(_argv(urls, tmp_path, *UNPINNED)) == 0
    assert len(server.requests) == 5
    assert capsys.readouterr().out.count("kept existing") == 5

    # --force fetches the prompt files again but reuses the cached COCO zip.
    assert download_prompts.main(_argv(urls, tmp_path, *UNPINNED, "--force")) == 0
    assert len(server.requests) == 9 and server.requests.count("/coco.zip") == 1


def test_cli_real_geneval_files_from_a_mirror(server, tmp_path):
    if not (SHARED_GENEVAL / "evaluation_metadata.jsonl").exists():
        pytest.skip("reference GenEval files not found in the shared folder beside the checkout")
    names = {"prompts/evaluation_metadata.jsonl": "evaluation_metadata.jsonl",
             "prompts/object_names.txt": "object_names.txt", "LICENSE": "LICENSE"}
    for remote, local in names.items():
        server.routes[f"/gv/{remote}"] = ("ok", (SHARED_GENEVAL / local).read_bytes())
    argv = ["geneval", "--root", str(tmp_path), "--no-progress", "--geneval-base-url", f"{server.url}/gv/"]
    assert download_prompts.main(argv) == 0
    for remote, local in names.items():
        fetched = tmp_path / "benchmark" / "geneval" / remote
        assert fetched.read_bytes() == (SHARED_GENEVAL / local).read_bytes()
    assert len(load_geneval_metadata(tmp_path / "benchmark/geneval/prompts/evaluation_metadata.jsonl")) == 553
    assert _files(tmp_path / "dataset") == []


def test_cli_offline_exits_1_naming_the_url(tmp_path, capsys):
    url = _refused_url()
    argv = ["drawbench", "--root", str(tmp_path), "--no-progress", "--timeout", "2", "--drawbench-url", url]
    assert download_prompts.main(argv) == 1
    err = capsys.readouterr().err
    assert "error: could not download" in err and url in err
    assert _files(tmp_path) == []


def test_cli_garbage_from_server_is_rejected(server, tmp_path, capsys):
    server.routes["/db.csv"] = ("ok", b"<html>Sign in to continue</html>\n")
    url = f"{server.url}/db.csv"
    argv = ["drawbench_sheet", "--root", str(tmp_path), "--no-progress", "--drawbench-sheet-url", url]
    assert download_prompts.main(argv) == 1
    err = capsys.readouterr().err
    assert f"{server.url}/db.csv" in err and "no prompt column" in err
    assert _files(tmp_path) == []


def test_cli_invalid_existing_file_needs_force(server, tmp_path, capsys):
    urls = _serve_all(server)
    dest = tmp_path / "benchmark" / "drawbench" / "drawbench.csv"
    dest.parent.mkdir(parents=True)
    dest.write_text("Prompts,Category\n,Colors\n")
    assert download_prompts.main(["drawbench_sheet", *_argv(urls, tmp_path)]) == 1
    assert "--force" in capsys.readouterr().err and server.requests == []
    assert download_prompts.main(["drawbench_sheet", "--force", *_argv(urls, tmp_path)]) == 0
    assert dest.read_text() == DRAWBENCH_CSV


def test_cli_rejects_unknown_targets(tmp_path):
    with pytest.raises(SystemExit) as info:
        download_prompts.main(["imagenet", "--root", str(tmp_path)])
    assert info.value.code == 2


# ---------------------------------------------------------------- pinned upstream files


def _upstream_json(prompts: list[str], repeats: int = 1) -> bytes:
    """A file in upstream's conversation format (its drawbench_test_1000.json repeats each prompt 5 times)."""
    records = [{"id": f"draw_bench_test_{i:05d}", "image_num": 0,
                "conversations": [{"from": "human", "value": p}, {"from": "gpt", "value": ""}]}
               for i, p in enumerate(prompts * repeats)]
    return json.dumps(records, indent=4).encode()


def test_pinned_drawbench_is_fetched_and_checked_by_sha256(server, tmp_path):
    body = _upstream_json(["A red colored car.", "Tcennis rpacket."], repeats=5)
    server.routes["/db.json"] = ("ok", body)
    pin = hashlib.sha256(body).hexdigest()
    dest = download_prompts.fetch_drawbench(tmp_path, f"{server.url}/db.json", sha256=pin, progress=False)
    assert dest == tmp_path / "benchmark" / "drawbench" / "drawbench_test_1000.json"
    assert dest.read_bytes() == body
    assert [r.text for r in load_drawbench(dest)] == ["A red colored car.", "Tcennis rpacket."]
    # an existing file that was altered is not kept silently
    dest.write_bytes(body.replace(b"red", b"blue"))
    with pytest.raises(DownloadError, match="not the pinned"):
        download_prompts.fetch_drawbench(tmp_path, f"{server.url}/db.json", sha256=pin, progress=False)


def test_drawbench_from_a_source_that_is_not_the_pinned_file_is_refused(server, tmp_path, capsys):
    server.routes["/db.json"] = ("ok", _upstream_json(["A red colored car."], repeats=5))
    argv = ["drawbench", "--root", str(tmp_path), "--no-progress", "--drawbench-url", f"{server.url}/db.json"]
    assert download_prompts.main(argv) == 1
    err = capsys.readouterr().err
    assert "not the pinned file" in err and download_prompts.DRAWBENCH_SHA256 in err
    assert _files(tmp_path) == []


def test_a_download_larger_than_its_cap_is_stopped(server, tmp_path):
    body = _upstream_json(["A red colored car."] * 50)
    server.routes["/db.json"] = ("ok", body)
    pin = hashlib.sha256(body).hexdigest()
    with pytest.raises(DownloadError, match=f"more than the {len(body) - 1}"):
        download_prompts.fetch_drawbench(tmp_path, f"{server.url}/db.json", sha256=pin, progress=False,
                                         max_bytes=len(body) - 1)
    assert _files(tmp_path) == []


def test_upstream_coco_file_is_checked_by_its_git_object_id(server, tmp_path):
    body = _upstream_json([f"a caption {i}" for i in range(30)])
    server.routes["/coco.json"] = ("ok", body)
    (tmp_path / "blob").write_bytes(body)
    blob = subprocess.run(["git", "hash-object", str(tmp_path / "blob")], capture_output=True, text=True,
                          check=True, timeout=30).stdout.strip()
    root = tmp_path / "root"
    dest = download_prompts.fetch_coco_upstream(root, f"{server.url}/coco.json", git_blob=blob, progress=False)
    assert dest == root / "dataset" / "coco_captions_30000_upstream.json" and len(load_prompts(dest)) == 30
    with pytest.raises(DownloadError, match="git object id"):
        download_prompts.fetch_coco_upstream(root, f"{server.url}/coco.json", git_blob="0" * 40, progress=False,
                                             force=True)
    assert dest.read_bytes() == body  # the rejected download left the pinned file as it was


def test_pinned_checksums_are_those_of_upstreams_tree():
    assert len(download_prompts.UPSTREAM_COMMIT) == 40
    assert download_prompts.UPSTREAM_COMMIT in download_prompts.DRAWBENCH_URL
    assert download_prompts.UPSTREAM_COMMIT in download_prompts.COCO_UPSTREAM_URL
    assert len(download_prompts.DRAWBENCH_SHA256) == 64 and len(download_prompts.COCO_UPSTREAM_GIT_BLOB) == 40


# ---------------------------------------------------------------- COCO sampler


def test_coco_sampler_is_seeded_one_caption_per_distinct_image():
    annotations = _coco_annotations(num_images=50, captions_per_image=5)
    samples = sample_coco_captions(annotations, num_captions=20, seed=1)
    assert len(samples) == 20 and len({s["image_id"] for s in samples}) == 20
    by_id = {a["id"]: a for a in annotations["annotations"]}
    for s in samples:
        source = by_id[s["caption_id"]]
        assert source["image_id"] == s["image_id"]
        assert s["caption"] == " ".join(source["caption"].split()) and not s["caption"].endswith(" ")
    assert sample_coco_captions(annotations, 20, seed=1) == samples
    assert sample_coco_captions(annotations, 20, seed=2) != samples
    # more than one caption index gets picked: not always the first caption of an image
    assert len({s["caption_id"] % 10 for s in samples}) > 1


def test_coco_sampler_ignores_annotation_order_and_empty_captions():
    annotations = _coco_annotations(num_images=40, captions_per_image=4)
    shuffled = dict(annotations, annotations=list(annotations["annotations"]))
    random.Random(0).shuffle(shuffled["annotations"])
    shuffled["annotations"].append({"id": 1, "image_id": 999_999, "caption": "  \n"})
    assert sample_coco_captions(shuffled, 25, seed=3) == sample_coco_captions(annotations, 25, seed=3)
    assert 999_999 not in {s["image_id"] for s in sample_coco_captions(shuffled, 40, seed=3)}


def test_coco_sampler_errors():
    annotations = _coco_annotations(num_images=5, captions_per_image=2)
    with pytest.raises(ValueError, match="only 5 captioned images"):
        sample_coco_captions(annotations, 6)
    with pytest.raises(ValueError, match="top-level 'annotations' list"):
        sample_coco_captions({"images": []}, 1)
    broken = dict(annotations, annotations=[{"id": 1, "image_id": "7", "caption": "x"}])
    with pytest.raises(ValueError, match="annotation #0 needs integer 'image_id'"):
        sample_coco_captions(broken, 1)


def test_coco_records_round_trip_through_load_prompts(tmp_path):
    samples = sample_coco_captions(_coco_annotations(10, 2), num_captions=10, seed=0)
    path = tmp_path / "coco_captions_10.json"
    path.write_text(json.dumps(to_conversation_records(samples)))
    records = load_prompts(path)
    assert [r.text for r in records] == [s["caption"] for s in samples]
    assert records[3].metadata["record"]["id"] == "coco_caption_00003"


def test_read_json_from_zip_errors(tmp_path):
    archive = tmp_path / "a.zip"
    archive.write_bytes(_coco_zip(num_images=2))
    assert len(read_json_from_zip(archive, "annotations/captions_val2014.json")["images"]) == 2
    with pytest.raises(ValueError, match="no member 'annotations/captions_train2017.json'"):
        read_json_from_zip(archive, "annotations/captions_train2017.json")
    broken = tmp_path / "b.zip"
    broken.write_bytes(b"<html>not a zip</html>")
    with pytest.raises(ValueError, match="not a valid zip"):
        read_json_from_zip(broken, "annotations/captions_val2014.json")
