"""Settings in sections: flat CAIRN_* variables and keyword arguments, the CAIRN_CONFIG file, precedence,
and where each value came from."""

from __future__ import annotations

import os
from ipaddress import ip_network
from pathlib import Path

import pytest
from pydantic import ValidationError

from cairn.cli import main
from cairn.settings import ConfigFileError, LimitsSettings, Settings, describe_settings


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No CAIRN_* variable of the machine running the tests leaks into these."""
    for name in list(os.environ):
        if name.upper().startswith("CAIRN_"):
            monkeypatch.delenv(name)


def write_config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "cairn.toml"
    path.write_text(text)
    return path


def test_defaults_come_in_sections() -> None:
    settings = Settings()
    assert settings.server.host == "127.0.0.1"
    assert settings.server.port == 8321
    assert settings.storage.data_dir == Path("cairn-data")
    assert settings.storage.resolved_database_url.endswith("/cairn-data/cairn.db")
    assert settings.limits.idle_timeout == 60.0
    assert settings.limits.rate_limits is True
    assert (settings.limits.rate_limit_inference_tokens, settings.limits.inference_streams_per_tenant) == (
        100_000,
        4,
    )
    assert settings.inference.embedded_models is True and settings.inference.providers == []
    assert settings.inference.embedded_threads >= 1
    assert (settings.jobs.job_workers, settings.jobs.job_lease_seconds, settings.jobs.job_max_attempts) == (
        2,
        60.0,
        5,
    )
    assert settings.vector_stores.model_dump() == {
        "default_embedding_model": "onnx/all-MiniLM-L6-v2",
        "max_file_bytes": 64 << 20,
        "rewrite_model": "llama-cpp/SmolLM2-135M-Instruct",
    }


def test_job_settings_come_from_flat_variables_and_the_jobs_table(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(
        "CAIRN_CONFIG", str(write_config(tmp_path, "[jobs]\njob_workers = 4\njob_max_attempts = 2\n"))
    )
    monkeypatch.setenv("CAIRN_JOB_LEASE_SECONDS", "30")
    settings = Settings()
    assert (settings.jobs.job_workers, settings.jobs.job_lease_seconds, settings.jobs.job_max_attempts) == (
        4,
        30.0,
        2,
    )
    assert settings.source_of("jobs.job_lease_seconds") == "env CAIRN_JOB_LEASE_SECONDS"
    with pytest.raises(ValueError):
        Settings(job_lease_seconds=0.5)


def test_remote_providers_from_the_config_file_and_from_json_in_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = write_config(
        tmp_path,
        """
[[inference.providers]]
id = "vllm"
type = "remote::vllm"
base_url = "http://gpu-1:8000/v1"
models = [{ id = "meta-llama/Llama-3.1-8B-Instruct", context_length = 131072 }]

[[inference.providers]]
id = "ollama"
type = "remote::ollama"
base_url = "http://localhost:11434/v1"
api_key_env = "OLLAMA_KEY"
""",
    )
    monkeypatch.setenv("CAIRN_CONFIG", str(config))
    monkeypatch.setenv("OLLAMA_KEY", "secret-1")
    vllm, ollama = Settings().inference.providers
    assert vllm.models[0].context_length == 131072 and vllm.enforces_tool_choice and vllm.key is None
    assert ollama.models is None and not ollama.enforces_tool_choice and ollama.key == "secret-1"
    assert ("inference.providers", f"{vllm}, {ollama}", f"config {config}") in describe_settings(Settings())
    monkeypatch.setenv("CAIRN_PROVIDERS", '[{"id": "openai", "base_url": "https://api.openai.com/v1"}]')
    (only,) = Settings().inference.providers
    assert (only.id, only.type, only.enforces_tool_choice) == ("openai", "remote::openai", True)


@pytest.mark.parametrize(
    "providers, complaint",
    [
        ('[{"id": "onnx", "base_url": "http://x/v1"}]', "not llama-cpp or onnx"),
        ('[{"id": "a", "base_url": "http://x/v1"}, {"id": "a", "base_url": "http://y/v1"}]', "unique"),
        ('[{"id": "a", "base_url": "ftp://x"}]', "base_url"),
        ('[{"id": "a", "base_url": "http://x/v1", "type": "remote::magic"}]', "type"),
    ],
)
def test_bad_providers_are_refused_with_the_reason(
    providers: str, complaint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CAIRN_PROVIDERS", providers)
    with pytest.raises(ValueError, match=complaint):
        Settings()


def test_gguf_models_must_be_gguf_files(tmp_path: Path) -> None:
    model = tmp_path / "tiny.gguf"
    model.write_bytes(b"GGUF")
    assert Settings(gguf_models=f" {model} ").inference.gguf_models == [model]
    with pytest.raises(ValueError, match=r"is not a \.gguf file"):
        Settings(gguf_models=str(tmp_path / "missing.gguf"))


def test_flat_environment_variables_land_in_their_sections(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {
        "CAIRN_HOST": "0.0.0.0",
        "CAIRN_PORT": "9000",
        "CAIRN_ACCESS_LOG": "false",
        "CAIRN_CORS_ORIGINS": "https://a.example.com, https://b.example.com/",
        "CAIRN_TRUSTED_PROXIES": "127.0.0.1,10.0.0.0/8",
        "CAIRN_DATA_DIR": "/srv/cairn",
        "CAIRN_S3_SECRET_ACCESS_KEY": "s3-secret",
        "CAIRN_IDLE_TIMEOUT": "2.5",
        "CAIRN_MAX_JSON_BYTES": "4096",
        "CAIRN_RATE_LIMIT_UPLOADS": "7",
        "CAIRN_RATE_LIMITS": "0",
        "CAIRN_RATE_LIMIT_INFERENCE_TOKENS": "5000",
        "CAIRN_INFERENCE_STREAMS_PER_TENANT": "2",
    }.items():
        monkeypatch.setenv(name, value)
    settings = Settings()
    assert (settings.server.host, settings.server.port, settings.server.access_log) == (
        "0.0.0.0",
        9000,
        False,
    )
    assert settings.server.cors_origins == ["https://a.example.com", "https://b.example.com"]
    assert settings.server.trusted_proxies == [ip_network("127.0.0.1/32"), ip_network("10.0.0.0/8")]
    assert settings.storage.data_dir == Path("/srv/cairn")
    assert settings.storage.resolved_database_url == "sqlite:////srv/cairn/cairn.db"
    assert settings.storage.s3_secret_access_key is not None
    assert settings.storage.s3_secret_access_key.get_secret_value() == "s3-secret"
    assert (settings.limits.idle_timeout, settings.limits.max_json_bytes) == (2.5, 4096)
    assert (settings.limits.rate_limit_uploads, settings.limits.rate_limits) == (7, False)
    assert (settings.limits.rate_limit_inference_tokens, settings.limits.inference_streams_per_tenant) == (
        5000,
        2,
    )


def test_a_bad_environment_value_is_refused_by_its_section(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CAIRN_MAX_JSON_BYTES", "10")
    with pytest.raises(ValidationError) as caught:
        Settings()
    assert [error["loc"] for error in caught.value.errors()] == [("limits", "max_json_bytes")]
    monkeypatch.delenv("CAIRN_MAX_JSON_BYTES")
    monkeypatch.setenv("CAIRN_BLOB_STORE", "s3://bucket/prefix")
    with pytest.raises(ValidationError, match="needs a PostgreSQL database_url"):
        Settings()
    monkeypatch.setenv("CAIRN_DATABASE_URL", "postgresql://db/cairn")
    assert Settings().storage.blob_store == "s3://bucket/prefix"


def test_flat_and_nested_keyword_arguments(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    flat = Settings(data_dir=tmp_path, idle_timeout=1, rate_limits=False, host="::1")
    assert flat.storage.data_dir == tmp_path
    assert (flat.limits.idle_timeout, flat.limits.rate_limits, flat.server.host) == (1.0, False, "::1")

    nested = Settings(limits={"idle_timeout": 3}, storage={"data_dir": tmp_path}, max_json_bytes=2048)
    assert (nested.limits.idle_timeout, nested.limits.max_json_bytes) == (3.0, 2048)
    assert nested.storage.data_dir == tmp_path

    # A section given as a model sets only what it was given: the rest still comes from the environment
    monkeypatch.setenv("CAIRN_UPLOAD_EXPIRY", "120")
    model = Settings(limits=LimitsSettings(idle_timeout=4))
    assert (model.limits.idle_timeout, model.limits.upload_expiry) == (4.0, 120)

    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        Settings(no_such_setting=1)
    with pytest.raises(ValidationError) as caught:
        Settings(limits={"host": "::1"})
    assert caught.value.errors()[0]["loc"] == ("limits", "host")
    with pytest.raises(TypeError, match="idle_timeout given twice"):
        Settings(idle_timeout=1, limits={"idle_timeout": 2})


def test_config_file_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_config(
        tmp_path,
        """
[server]
host = "0.0.0.0"
port = 9000
cors_origins = ["https://app.example.com"]

[storage]
data_dir = "/srv/from-file"

[limits]
idle_timeout = 30
max_json_bytes = 8192
rate_limits = false

[inference]

[vector_stores]
max_file_bytes = 1048576
""",
    )
    monkeypatch.setenv("CAIRN_CONFIG", str(path))
    from_file = Settings()
    assert (from_file.server.host, from_file.server.port) == ("0.0.0.0", 9000)
    assert from_file.server.cors_origins == ["https://app.example.com"]
    assert from_file.storage.data_dir == Path("/srv/from-file")
    assert (from_file.limits.idle_timeout, from_file.limits.max_json_bytes) == (30.0, 8192)
    assert from_file.limits.rate_limits is False
    assert from_file.limits.upload_expiry == 86_400  # not in the file: the default
    assert from_file.vector_stores.max_file_bytes == 1 << 20

    # env beats the file, keyword arguments beat env; what neither sets still comes from the file
    monkeypatch.setenv("CAIRN_PORT", "9100")
    monkeypatch.setenv("CAIRN_IDLE_TIMEOUT", "20")
    settings = Settings(idle_timeout=5, data_dir=tmp_path)
    assert settings.server.port == 9100
    assert settings.limits.idle_timeout == 5.0
    assert settings.storage.data_dir == tmp_path
    assert settings.server.host == "0.0.0.0"
    assert settings.limits.max_json_bytes == 8192

    sources = {name: source for name, _, source in describe_settings(settings)}
    assert sources["server.port"] == "env CAIRN_PORT"
    assert sources["server.host"] == f"config {path}"
    assert sources["limits.idle_timeout"] == "argument"
    assert sources["storage.data_dir"] == "argument"
    assert sources["limits.max_json_bytes"] == f"config {path}"
    assert sources["limits.upload_expiry"] == "default"


def test_config_file_values_are_validated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CAIRN_CONFIG", str(write_config(tmp_path, '[server]\nport = "many"\n')))
    with pytest.raises(ValidationError) as caught:
        Settings()
    assert caught.value.errors()[0]["loc"] == ("server", "port")


def test_unknown_tables_and_keys_are_refused_with_their_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_config(
        tmp_path,
        """
host = "0.0.0.0"

[serverr]
port = 1

[limits]
idel_timeout = 3
redis_url = "redis://cache:6379/0"
""",
    )
    monkeypatch.setenv("CAIRN_CONFIG", str(path))
    with pytest.raises(ConfigFileError) as caught:
        Settings()
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"config file {path}: ")
    assert "unknown key 'host' outside any table (it belongs in [server])" in message
    assert "unknown table [serverr]" in message
    assert "unknown key 'idel_timeout' in [limits] (did you mean 'idle_timeout'?)" in message
    assert "unknown key 'redis_url' in [limits] (it belongs in [storage])" in message


def test_a_missing_or_malformed_file_is_one_clear_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = tmp_path / "absent.toml"
    monkeypatch.setenv("CAIRN_CONFIG", str(missing))
    with pytest.raises(ConfigFileError, match=f"^config file {missing} \\(CAIRN_CONFIG\\): no such file$"):
        Settings()
    broken = write_config(tmp_path, "[server]\nport = \n")
    monkeypatch.setenv("CAIRN_CONFIG", str(broken))
    with pytest.raises(ConfigFileError, match=f"^config file {broken}: not valid TOML: .*line 2") as caught:
        Settings()
    assert "\n" not in str(caught.value)
    monkeypatch.setenv("CAIRN_CONFIG", str(write_config(tmp_path, "server = 1\n")))
    with pytest.raises(ConfigFileError, match=r"'server' must be a table \[server\]"):
        Settings()


def test_describe_settings_names_every_value_and_its_source_and_masks_secrets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_config(tmp_path, '[storage]\ns3_access_key_id = "AKIDEXAMPLE"\n[server]\nport = 9000\n')
    monkeypatch.setenv("CAIRN_CONFIG", str(path))
    monkeypatch.setenv("CAIRN_S3_SECRET_ACCESS_KEY", "wJalrXUtnFEMI-secret")
    monkeypatch.setenv("CAIRN_DATABASE_URL", "postgresql://cairn:db-password@db:5432/cairn")
    monkeypatch.setenv("CAIRN_BLOB_STORE", "s3://bucket/prefix")
    settings = Settings(redis_url="rediss://:redis-password@cache:6380/2", idle_timeout=1.5)
    rows = describe_settings(settings)

    names = [name for name, _, _ in rows]
    assert names[:2] == ["server.host", "server.port"]
    assert len(names) == len(set(names)) == 43  # every field of every section, once
    assert "limits.rate_limit_deletions" in names

    table = {name: (value, source) for name, value, source in rows}
    assert table["server.host"] == ("127.0.0.1", "default")
    assert table["server.port"] == ("9000", f"config {path}")
    assert table["storage.s3_access_key_id"] == ("AKIDEXAMPLE", f"config {path}")
    assert table["storage.s3_secret_access_key"] == ("********", "env CAIRN_S3_SECRET_ACCESS_KEY")
    assert table["storage.database_url"] == (
        "postgresql://cairn:********@db:5432/cairn",
        "env CAIRN_DATABASE_URL",
    )
    assert table["storage.redis_url"] == ("rediss://:********@cache:6380/2", "argument")
    assert table["limits.idle_timeout"] == ("1.5", "argument")
    assert table["limits.keepalive_timeout"] == ("75", "default")
    assert table["limits.max_upload_bytes"] == ("107374182400 (100 GiB)", "default")
    assert table["server.cors_origins"] == ("(none)", "default")
    assert table["server.public_url"] == ("(unset)", "default")
    text = repr(rows)
    for secret in ("wJalrXUtnFEMI-secret", "db-password", "redis-password"):
        assert secret not in text


def test_cairn_doctor_prints_the_table(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("CAIRN_CONFIG", "CAIRN_DATA_DIR"):  # the CLI sets them from its flags: undo at the end
        monkeypatch.setenv(name, "")
    path = write_config(tmp_path, "[limits]\nidle_timeout = 12\n")
    monkeypatch.setenv("CAIRN_S3_SECRET_ACCESS_KEY", "doctor-secret")
    assert main(["doctor", "--config", str(path), "--data-dir", str(tmp_path / "data")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["setting", "value", "source"]
    assert any(line.split() == ["limits.idle_timeout", "12", "config", str(path)] for line in lines)
    assert any(
        line.split() == ["storage.data_dir", str(tmp_path / "data"), "env", "CAIRN_DATA_DIR"]
        for line in lines
    )
    assert "doctor-secret" not in "\n".join(lines)
    assert ["backend", "metadata", "sqlite"] in [line.split() for line in lines]
    assert ["capability", "free", "space", "reporting", "yes"] in [line.split() for line in lines]
    assert ["metadata", "ok"] in [line.split() for line in lines]
    assert ["provider", "llama-cpp", "ok"] in [line.split() for line in lines]  # listed, not loaded
    # the embedding model loads for its ping, which on a busy machine may take longer than the ping's 2 s
    assert any(line.split()[:2] == ["provider", "onnx"] for line in lines if line)


def test_cairn_doctor_says_which_dependency_does_not_answer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("CAIRN_CONFIG", "CAIRN_DATA_DIR"):
        monkeypatch.setenv(name, "")
    monkeypatch.setenv("CAIRN_DATABASE_URL", "postgresql://nobody@127.0.0.1:1/none")
    assert main(["doctor", "--data-dir", str(tmp_path / "data")]) == 1
    answers = {line.split()[0]: line for line in capsys.readouterr().out.splitlines() if line}
    assert answers["blobs"].split() == ["blobs", "ok"]
    assert "unavailable" in answers["metadata"].lower()


def test_cli_reports_config_file_errors_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CAIRN_CONFIG", "")
    assert main(["doctor", "--config", str(tmp_path / "absent.toml")]) == 2
    assert (
        capsys.readouterr().err
        == f"error: config file {tmp_path / 'absent.toml'} (CAIRN_CONFIG): no such file\n"
    )

    path = write_config(tmp_path, "[limits]\nidle_timeout = -1\n")
    assert main(["doctor", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: limits.idle_timeout (config {path}): Input should be greater than 0")
    assert err.count("\n") == 1
