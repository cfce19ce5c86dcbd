"""The job's pure pieces: URIs, safe paths, exit-code rule, message file, config precedence, sharding, discovery,
cache key, progress throttling, structlog output."""

from __future__ import annotations

import argparse
import io
import json

import pytest
from s3server import opt_ml_tree, write_ply

from sogs_compressor.compute_policy import plan_devices
from sogs_compressor.errors import DeviceError, InvalidValuesError, SizeMismatchError, StorageError
from sogs_compressor.fetch.paths import UnsafeKeyError, key_parts
from sogs_compressor.fetch.uri import S3Uri, names_one_object, parse_s3_uri
from sogs_compressor.job import cache
from sogs_compressor.job.batch import duplicates, read_metadata
from sogs_compressor.job.config import ConfigError, host_sort_key, load_config
from sogs_compressor.job.failure import error_record, format_message, job_exit_code, write_message
from sogs_compressor.job.inputs import gather, labels_for, sidecars_for
from sogs_compressor.job.log import configure_logging, get_logger, redact_env
from sogs_compressor.job.main import build_parser
from sogs_compressor.job.naming import NAME_LIMIT, fit_name, fit_path, look_alike
from sogs_compressor.job.sharding import assignment_report, host_index
from sogs_compressor.options import CompressOptions
from sogs_compressor.read.registry import scene_stem
from sogs_compressor.storage.local import LocalStorage


# ---- URIs and paths ------------------------------------------------------------------------------------
def test_s3_uri_keeps_hash_and_question_mark_in_keys():
    uri = parse_s3_uri("s3://bucket/scenes/a #1?.ply")
    assert (uri.bucket, uri.key) == ("bucket", "scenes/a #1?.ply")
    assert names_one_object(uri)
    assert not names_one_object(parse_s3_uri("s3://bucket/scenes"))


def test_s3_uri_prefix_and_join_do_not_double_slashes():
    assert str(parse_s3_uri("s3://bucket/scenes").as_prefix()) == "s3://bucket/scenes/"
    assert parse_s3_uri("s3://bucket/out/").join("a/b/").key == "out/a/b"
    assert parse_s3_uri("s3://bucket").join("x.json") == S3Uri("bucket", "x.json")


@pytest.mark.parametrize("bad", ["http://bucket/x", "s3://", "s3://ab/x", "s3://bad_bucket!/x"])
def test_bad_uris_are_storage_errors(bad):
    with pytest.raises(StorageError):
        parse_s3_uri(bad)


@pytest.mark.parametrize("key", ["../../escape.ply", "/abs.ply", "a/../../b.ply", "a//b.ply", "a/./b.ply",
                                 "", "a\\..\\b.ply", "nul\x00.ply", "C:/x.ply"])
def test_unsafe_keys_are_refused(key):
    with pytest.raises(UnsafeKeyError):
        key_parts(key)


def test_safe_keys_are_split_and_may_be_long():
    assert key_parts("a/b c/#d.ply") == ["a", "b c", "#d.ply"]
    assert key_parts("x/" + "y" * 300 + ".ply")[1] == "y" * 300 + ".ply"  # the job fits derived names itself


# ---- exit codes and the message file -------------------------------------------------------------------
def test_job_exit_code_rule():
    assert job_exit_code([]) == 0
    assert job_exit_code([14]) == 14
    assert job_exit_code([14, 14]) == 14
    assert job_exit_code([14, 16, 3]) == 3  # all bad input, different codes
    assert job_exit_code([14, 20]) == 20
    assert job_exit_code([14, 30, 20]) == 30
    assert job_exit_code([14, 1, 40]) == 1
    assert job_exit_code([14], interrupted=True) == 130


def test_error_record_kinds():
    assert error_record(SizeMismatchError("truncated"))["kind"] == "bad_input"
    assert error_record(InvalidValuesError("nan"))["exit_code"] == 16
    assert error_record(DeviceError("no gpu")) == {"kind": "no_gpu", "exit_code": 20, "message": "no gpu"}
    assert error_record(ValueError("boom\nline two")) == {
        "kind": "internal", "exit_code": 1, "message": "internal error: ValueError: boom line two"}


def test_message_is_one_host_prefixed_utf8_line_within_its_share(tmp_path):
    text = "é" * 2000 + "\nsecond line"
    one = format_message("algo-1", text, host_count=1)
    assert one.startswith("algo-1: ") and one.count("\n") == 1 and len(one.encode()) <= 1024
    four = format_message("algo-1", text, host_count=4)
    assert len(four.encode()) <= 256
    four.encode("utf-8").decode("utf-8")  # cut on a character boundary
    path = tmp_path / "deep" / "message"
    write_message(path, "algo-2", "ok")
    assert path.read_text(encoding="utf-8") == "algo-2: ok\n"


# ---- configuration -------------------------------------------------------------------------------------
def parse(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(list(argv))


def test_config_from_sagemaker_files(tmp_path):
    root = opt_ml_tree(tmp_path, inputs={"a": "s3://b/a/", "b": "s3://b/b/", "code": "s3://b/code/"},
                       host="algo-2", hosts=["algo-10", "algo-2", "algo-1"])
    config = load_config(parse(), {"SOGS_OPT_ML_ROOT": str(root)})
    assert config.inputs == [str(root / "processing/input/a"), str(root / "processing/input/b")]
    assert config.output == str(root / "processing/output/sog")
    assert config.output_s3_uri == "s3://bucket/out/"
    assert (config.job_name, config.host, config.instance_type) == ("test-job", "algo-2", "ml.c6i.xlarge")
    assert config.hosts == ["algo-1", "algo-2", "algo-10"] and config.host_index == 1
    assert config.message_file == root / "output" / "message"
    assert config.sources == {"inputs": "processingjobconfig.json", "output": "processingjobconfig.json",
                              "host": "resourceconfig.json"}


def test_config_precedence_flag_over_env_over_legacy_over_files(tmp_path):
    root = opt_ml_tree(tmp_path)
    env = {"SOGS_OPT_ML_ROOT": str(root), "SM_CHANNEL_INPUT": "/legacy/in", "SM_OUTPUT_DATA_DIR": "/legacy/out",
           "SM_CURRENT_HOST": "algo-7", "LOG_LEVEL": "debug"}
    legacy = load_config(parse(), env)
    assert (legacy.inputs, legacy.output, legacy.host, legacy.log_level) == (
        ["/legacy/in"], "/legacy/out", "algo-7", "DEBUG")
    assert legacy.sources["inputs"] == "env:SM_CHANNEL_INPUT"
    env.update({"S3_INPUT_URI": "s3://b/in/", "S3_OUTPUT_URI": "s3://b/out/", "SOGS_HOST": "h"})
    modern = load_config(parse(), env)
    assert (modern.inputs, modern.output, modern.host) == (["s3://b/in/"], "s3://b/out/", "h")
    flags = load_config(parse("--input", "/x", "--input", "/y", "--output", "/z", "--host", "f"), env)
    assert (flags.inputs, flags.output, flags.host) == (["/x", "/y"], "/z", "f")


def test_config_defaults_without_files(tmp_path):
    config = load_config(parse(), {"SOGS_OPT_ML_ROOT": str(tmp_path)})
    assert config.inputs == [str(tmp_path / "processing/input")]
    assert config.output == str(tmp_path / "processing/output")
    assert (config.host, config.hosts, config.job_name) == ("local", ["local"], "local")


def test_codec_settings_from_env_and_flags(tmp_path):
    env = {"SOGS_OPT_ML_ROOT": str(tmp_path), "SOGS_LAYOUT": "bundle", "SOGS_SH_BANDS": "1", "SOGS_DEVICE": "cpu"}
    assert load_config(parse(), env).options.layout == "bundle"
    config = load_config(parse("--layout", "dir", "--sh-bands", "2"), env)
    assert (config.options.layout, config.options.sh_bands, config.options.device) == ("dir", 2, "cpu")


def test_lod_settings_from_env_and_flags(tmp_path):
    env = {"SOGS_OPT_ML_ROOT": str(tmp_path), "SOGS_LAYOUT": "lod", "SOGS_LOD_LEVELS": "3",
           "SOGS_LOD_MIN_SPLATS": "1000", "SOGS_LOD_CHUNK_COUNT": "64", "SOGS_LOD_CHUNK_EXTENT": "2.5",
           "SOGS_LOD_CHUNK_MIN": "4"}
    options = load_config(parse(), env).options
    assert (options.layout, options.lod_levels, options.lod_min_splats, options.lod_chunk_count,
            options.lod_chunk_extent, options.lod_chunk_min) == ("lod", 3, 1000, 64, 2.5, 4)
    options = load_config(parse("--lod-levels", "2", "--lod-chunk-extent", "8"), env).options
    assert (options.lod_levels, options.lod_chunk_extent, options.lod_chunk_count) == (2, 8.0, 64)
    # a bad value in the environment is refused even where a flag would replace it: it is a mistake either way
    with pytest.raises(ConfigError, match="SOGS_LOD_CHUNK_MIN: --lod-chunk-min must be"):
        load_config(parse("--lod-chunk-min", "4"), {**env, "SOGS_LOD_CHUNK_MIN": "-1"})
    with pytest.raises(ConfigError, match=r"SOGS_LOD_LEVELS \(--lod-levels\) must be an integer, not '2.5'"):
        load_config(parse(), {**env, "SOGS_LOD_LEVELS": "2.5"})
    with pytest.raises(ConfigError, match="--target-psnr is not supported with --layout lod"):
        load_config(parse("--target-psnr", "40"), env)
    assert load_config(parse(), {**env, "SOGS_LOD_PALETTE": "level"}).options.lod_palette == "level"
    assert load_config(parse("--lod-palette", "chunk"), {**env, "SOGS_LOD_PALETTE": "level"}).options.lod_palette == "chunk"
    with pytest.raises(ConfigError, match="SOGS_LOD_PALETTE"):
        load_config(parse(), {**env, "SOGS_LOD_PALETTE": "shared"})


def test_bad_config_is_one_clear_error(tmp_path):
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "processingjobconfig.json").write_text("{not json")
    with pytest.raises(ConfigError, match="processingjobconfig.json"):
        load_config(parse(), {"SOGS_OPT_ML_ROOT": str(tmp_path)})
    with pytest.raises(ConfigError, match="SOGS_WORKERS"):
        load_config(parse(), {"SOGS_OPT_ML_ROOT": str(tmp_path / "none"), "SOGS_WORKERS": "many"})


def test_named_output_must_exist(tmp_path):
    root = opt_ml_tree(tmp_path, output="sog")
    with pytest.raises(ConfigError, match="no ProcessingOutput named 'other'"):
        load_config(parse("--output-name", "other"), {"SOGS_OPT_ML_ROOT": str(root)})


def test_public_config_redacts_secrets(tmp_path):
    env = {"SOGS_OPT_ML_ROOT": str(tmp_path), "SOGS_API_TOKEN": "hunter2", "AWS_SECRET_ACCESS_KEY": "s3cr3t",
           "SOGS_PRESET": "fast"}
    text = json.dumps(load_config(parse(), env).public())
    assert "hunter2" not in text and "s3cr3t" not in text and '"SOGS_PRESET": "fast"' in text
    assert redact_env({"SOGS_PASSWORD": "x", "SOGS_A": "y"}, ("SOGS_",)) == {"SOGS_A": "y", "SOGS_PASSWORD": "***"}


def test_host_sort_is_numeric():
    assert sorted(["algo-10", "algo-2", "algo-1"], key=host_sort_key) == ["algo-1", "algo-2", "algo-10"]


# ---- sharding, discovery, devices ----------------------------------------------------------------------
def test_shard_partitions_keys_across_hosts():
    names = [f"k{i}" for i in range(200)]
    shares = [[n for n in names if host_index(n, 3) == i] for i in range(3)]
    assert sorted(sum(shares, [])) == sorted(names)
    assert all(40 < len(s) < 90 for s in shares)  # roughly even
    assert {host_index(n, 1) for n in names} == {0}


def test_shard_of_a_key_does_not_depend_on_the_listing():
    """Issue 12 #16: a key added between two hosts' listings shifted every later index."""
    names = [f"scene{i:02d}" for i in range(30)]
    before = {n: host_index(n, 2) for n in names}
    after = {n: host_index(n, 2) for n in ["aaa-new", *names]}  # a key sorting first appears
    assert all(after[n] == before[n] for n in names)
    # look-alike output folders (which would clash) always land on the same host
    assert host_index("Case", 5) == host_index("case", 5) == host_index("CASE", 5)
    assert host_index("caf\u00e9", 7) == host_index("cafe\u0301", 7)


def test_sharding_report_names_the_rule_and_this_hosts_keys():
    identities = {f"s3://b/in/s{i}.ply": f"s{i}" for i in range(10)}
    hosts = ["algo-1", "algo-2"]
    one, two = (assignment_report(identities, hosts, h) for h in hosts)
    assert sorted(one["keys"] + two["keys"]) == sorted(identities)
    assert one["per_host"] == two["per_host"] and sum(one["per_host"].values()) == 10
    assert one["listed"] == 10 and "sha256" in one["rule"] and one["host"] == "algo-1"


# ---- names that fit --------------------------------------------------------------------------------------
def test_long_names_are_shortened_stably_and_uniquely():
    """Issue 12 #15: a 251-byte key name overflowed the 255-byte file-name limit once the job added to it."""
    long_a, long_b = "a" * 247 + "x.ply", "a" * 247 + "y.ply"
    fitted_a, fitted_b = fit_name(long_a, ".ply"), fit_name(long_b, ".ply")
    assert len(fitted_a.encode()) <= NAME_LIMIT and fitted_a.endswith(".ply") and "~" in fitted_a
    assert fitted_a != fitted_b and fit_name(long_a, ".ply") == fitted_a
    assert fit_name("short.ply", ".ply") == "short.ply"
    multibyte = fit_name("é" * 200)
    assert len(multibyte.encode()) <= NAME_LIMIT and multibyte.encode().decode() == multibyte  # whole characters
    assert fit_path("ok/" + "b" * 300) == "ok/" + fit_name("b" * 300)


def test_look_alike_folds_case_and_unicode_normalisation():
    assert look_alike("Caf\u00e9") == look_alike("cafe\u0301") == look_alike("CAFE\u0301")
    assert look_alike("cafe") != look_alike("caf\u00e9")


def test_sidecars_and_labels():
    keys = {"p/a.ply", "p/a.metadata.json", "p/metadata.json", "q/b.ply"}
    assert sidecars_for("p/a.ply", keys) == ["p/a.metadata.json", "p/metadata.json"]
    assert sidecars_for("q/b.ply", keys) == []
    assert labels_for(["/x/in"]) == [""]
    assert labels_for(["/x/a", "s3://b/a/", "/y/b"]) == ["a", "a-1", "b"]


def test_scene_stem():
    assert scene_stem("Room.Compressed.PLY") == "Room"
    assert scene_stem("a.sog") == "a" and scene_stem("a.ply") == "a"
    assert scene_stem("notes.txt") is None and scene_stem(".ply") is None


def local_scenes(*inputs):
    """The scenes the job gathers from local inputs (no S3 is reached for them)."""
    return gather([str(path) for path in inputs], inputs[0], lambda: pytest.fail("S3 for a local input")).scenes


def test_discovery_is_recursive_sorted_and_skips_hidden(tmp_path):
    for rel in ("b.ply", "a/c.compressed.ply", "a/d.sog", ".hidden/x.ply", "a/.e.ply", "a/readme.txt"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"")
    scenes = local_scenes(tmp_path)
    assert [(s.rel, s.out_rel) for s in scenes] == [("b.ply", "b"), ("a/c.compressed.ply", "a/c"),
                                                    ("a/d.sog", "a/d")]
    assert [(s.path, s.source) for s in scenes[:2]] == [(tmp_path / "b.ply", str(tmp_path / "b.ply")),
                                                        (tmp_path / "a/c.compressed.ply",
                                                         str(tmp_path / "a/c.compressed.ply"))]
    labelled = local_scenes(tmp_path / "b.ply", tmp_path / "a")
    assert [(s.rel, s.out_rel) for s in labelled] == [("b.ply/b.ply", "b.ply/b"), ("a/c.compressed.ply", "a/c"),
                                                      ("a/d.sog", "a/d")]


def test_duplicate_output_folders_are_reported(tmp_path):
    for rel in ("a.ply", "a.sog", "b.ply"):
        (tmp_path / rel).write_bytes(b"")
    clashes = duplicates(local_scenes(tmp_path))
    assert list(clashes) == ["a.sog"] and "already used by a.ply" in clashes["a.sog"]


def test_nfc_and_nfd_names_are_a_clash_like_case(tmp_path):
    """Issue 12 #20: café in NFC and in NFD became two output folders that look the same."""
    nfc, nfd = "caf\u00e9", "cafe\u0301"
    for name in (f"{nfc}.ply", f"{nfd}.ply", "Case.ply", "case.ply", "other.ply"):
        (tmp_path / name).write_bytes(b"")
    clashes = duplicates(local_scenes(tmp_path))
    assert len(clashes) == 2
    unicode_clash = next(m for rel, m in clashes.items() if rel.startswith("caf"))
    assert "Unicode normalisation" in unicode_clash and ascii(nfc) in unicode_clash and ascii(nfd) in unicode_clash
    assert "letter case" in next(m for rel, m in clashes.items() if rel.lower() == "case.ply")


def test_metadata_sidecar(tmp_path):
    scene = write_ply(tmp_path / "s.ply", 10)
    assert read_metadata(scene) == (None, None)
    (tmp_path / "metadata.json").write_text('{"owner": "x"}')
    assert read_metadata(scene) == ({"owner": "x"}, None)
    (tmp_path / "s.metadata.json").write_text("{bad")
    data, warning = read_metadata(scene)
    assert data is None and "not valid JSON" in warning


@pytest.mark.parametrize("text, why", [
    ('{"owner": NaN}', "NaN, which is not JSON"),  # would have made the report carrying it unreadable JSON
    ("[" * 100_000 + "]" * 100_000, "nested too deeply"),  # was a RecursionError: the scene failed
    ('{"n": ' + "9" * 5000 + "}", "integer literal"),
    ("\udcff", "not valid JSON"),
])
def test_a_hostile_metadata_sidecar_is_ignored_with_a_warning(tmp_path, text, why):
    scene = write_ply(tmp_path / "s.ply", 10)
    (tmp_path / "s.metadata.json").write_bytes(text.encode("utf-8", "surrogateescape"))
    data, warning = read_metadata(scene)
    assert data is None and why in warning and warning.startswith("s.metadata.json ignored: it ")


def test_a_damaged_cached_report_is_a_cache_miss():
    from sogs_compressor.job.cache import parse_report

    assert parse_report('{"status": "ok"}') == {"status": "ok"}
    for raw in ("[" * 100_000 + "]" * 100_000, '{"status": NaN}', b"\xff\xfe{", "[]", "{"):
        assert parse_report(raw) is None


def test_plan_devices():
    assert plan_devices(None, "cpu", None, 0, False) == ["cpu"]
    assert plan_devices(2, "cpu", None, 0, False) == ["cpu", "cpu"]
    assert plan_devices(None, "cuda", 0, 4, False) == ["cuda:0", "cuda:1", "cuda:2", "cuda:3"]
    assert plan_devices(None, "cuda", 2, 4, True) == ["cuda:2"]
    assert plan_devices(3, "cuda", 0, 2, False) == ["cuda:0", "cuda:1", "cuda:0"]


# ---- cache key -------------------------------------------------------------------------------------------
def test_cache_key_ignores_device_and_name_but_not_settings():
    base = cache.cache_key(CompressOptions(), "1.0")
    assert cache.cache_key(CompressOptions(device="cuda", name="x"), "1.0") == base
    assert cache.cache_key(CompressOptions(sh_bands=1), "1.0") != base
    assert cache.cache_key(CompressOptions(), "1.1") != base


def test_local_cache_requires_intact_outputs(tmp_path):
    (tmp_path / "s.sog").write_bytes(b"sog-bytes")
    from sogs_compressor.report.hashing import sha256_file

    report = {"status": "ok", "input": {"sha256": "abc"}, "cache_key": "k",
              "outputs": [{"name": "s.sog", "bytes": 9, "sha256": sha256_file(tmp_path / "s.sog")}]}
    (tmp_path / "compression_report.json").write_text(json.dumps(report))
    assert cache.find(LocalStorage(tmp_path.parent), tmp_path.name, "abc", "k") is None  # no text report: incomplete
    (tmp_path / "compression_report.txt").write_text("report")
    assert cache.find(LocalStorage(tmp_path.parent), tmp_path.name, "abc", "k") is not None
    assert cache.find(LocalStorage(tmp_path.parent), tmp_path.name, "abd", "k") is None
    assert cache.find(LocalStorage(tmp_path.parent), tmp_path.name, "abc", "other") is None
    (tmp_path / "s.sog").write_bytes(b"SOG-bytes")  # same size, different content
    assert cache.find(LocalStorage(tmp_path.parent), tmp_path.name, "abc", "k") is None


# ---- logging ----------------------------------------------------------------------------------------------
def test_json_logs_have_no_locals_and_no_secret_fields():
    stream = io.StringIO()
    configure_logging("INFO", "json", stream)
    log = get_logger("t")

    def fail(secret_value="hunter2"):
        raise RuntimeError("boom")

    try:
        fail()
    except RuntimeError:
        log.exception("failed", aws_secret_access_key="s3cr3t")
    line = json.loads(stream.getvalue().splitlines()[-1])
    text = json.dumps(line)
    assert "hunter2" not in text and "s3cr3t" not in text and "boom" in text
    assert line["aws_secret_access_key"] == "***"
    import logging

    logging.getLogger("botocore.endpoint").info("hidden")
    logging.getLogger("botocore.endpoint").warning("shown")
    assert "hidden" not in stream.getvalue() and "shown" in stream.getvalue()


def test_quick_gpu_check(tmp_path):
    from sogs_compressor.errors import DeviceError
    from sogs_compressor.job.main import quick_gpu_check

    missing = [str(tmp_path / "nvidiactl")]
    with pytest.raises(DeviceError, match="no NVIDIA GPU"):
        quick_gpu_check("cuda:1", missing)
    quick_gpu_check("cpu", missing)
    quick_gpu_check("auto", missing)
    (tmp_path / "nvidiactl").write_text("")
    quick_gpu_check("cuda", missing)


def test_cache_pre_check_needs_same_size_and_key():
    from sogs_compressor.job.cache import may_match

    report = {"status": "ok", "cache_key": "k", "input": {"bytes": 10, "sha256": "abc"}}
    assert may_match(report, 10, "k")
    assert not may_match(report, 11, "k") and not may_match(report, 10, "other") and not may_match(None, 10, "k")
    assert not may_match({"cache_key": "k"}, 10, "k")


def test_hashing_stops_between_chunks(tmp_path):
    from sogs_compressor.errors import Interrupted
    from sogs_compressor.report.hashing import CHUNK, sha256_file

    path = tmp_path / "big.bin"
    path.write_bytes(b"x" * (3 * CHUNK))
    asked = []

    def stop_on_second_chunk() -> bool:
        asked.append(1)
        return len(asked) >= 2

    with pytest.raises(Interrupted):
        sha256_file(path, stop_on_second_chunk)
    assert len(asked) == 2
