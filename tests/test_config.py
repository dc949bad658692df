"""Tests for the settings tree: defaults, TOML file, environment overrides and operator-readable errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import BaseModel

from bzzz_console import config
from bzzz_console.config import ConfigError, Settings, load_settings
from bzzz_console.config_docs import field_docs


@pytest.fixture(autouse=True)
def _no_user_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Never read the developer's real config file: the default path points at a file that does not exist."""
    monkeypatch.setattr(config, "default_config_path", lambda: tmp_path / "absent" / "config.toml")


def write(tmp_path: Path, text: str, name: str = "config.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# --------------------------------------------------------------------------- defaults


def test_defaults_without_file_or_env() -> None:
    s = load_settings(environ={})
    assert s == Settings()
    assert s.model.provider == "auto"
    assert s.model.base_url is None
    assert s.model.api_key_env == "OPENAI_API_KEY"
    assert s.model.timeout_s == 60.0
    assert s.model.max_attempts == 4
    assert s.model.max_output_tokens == 800
    assert s.demo.seed == 7
    assert s.demo.latency_ms == 40.0
    assert s.runtime.project == "default"
    assert s.runtime.fleet == {"architect": 2, "reviewer": 2, "documentation": 1}
    assert s.runtime.agents_dir is None
    assert s.runtime.max_turns == 24
    assert s.runtime.max_tool_rounds == 4
    assert s.runtime.max_agents_per_role == 2
    assert s.runtime.poll_interval_s == 0.5
    assert s.runtime.episodes_in_prompt == 3
    assert s.store.url is None
    assert s.data_dir is None


def test_non_bzzz_env_vars_are_ignored() -> None:
    s = load_settings(
        environ={"PATH": "/usr/bin", "OPENAI_API_KEY": "sk-x", "BZZZ_TEST_POSTGRES_URL": "pg://"}
    )
    assert s == Settings()


def test_settings_are_frozen() -> None:
    s = Settings()
    with pytest.raises(Exception, match="frozen"):
        s.runtime.max_turns = 3  # type: ignore[misc]


# --------------------------------------------------------------------------- file and environment


def test_file_values_are_read(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
data_dir = "/srv/bzzz"
[model]
provider = "openai"
base_url = "http://127.0.0.1:11434/v1"
timeout_s = 12.5
[runtime]
max_turns = 10
project = "alpha"
fleet = { architect = 3 }
[store]
url = "postgresql+psycopg://u:p@h/db"
""",
    )
    s = load_settings(path, environ={})
    assert s.model.provider == "openai"
    assert s.model.base_url == "http://127.0.0.1:11434/v1"
    assert s.model.timeout_s == 12.5
    assert s.model.max_attempts == 4  # untouched keys keep their defaults
    assert s.runtime.max_turns == 10
    assert s.runtime.project == "alpha"
    assert s.runtime.fleet == {"architect": 3}
    assert s.store.url == "postgresql+psycopg://u:p@h/db"
    assert s.data_dir == Path("/srv/bzzz")
    assert s.database_url() == "postgresql+psycopg://u:p@h/db"


def test_bzzz_config_env_names_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "[demo]\nseed = 99\n", name="other.toml")
    s = load_settings(environ={"BZZZ_CONFIG": str(path)})
    assert s.demo.seed == 99


def test_env_overrides_file(tmp_path: Path) -> None:
    path = write(tmp_path, "[runtime]\nmax_turns = 10\nmax_tool_rounds = 2\n")
    s = load_settings(path, environ={"BZZZ_RUNTIME__MAX_TURNS": "30"})
    assert s.runtime.max_turns == 30
    assert s.runtime.max_tool_rounds == 2  # the rest of the file's section survives


def test_env_top_level_key() -> None:
    s = load_settings(environ={"BZZZ_DATA_DIR": "/var/lib/bzzz"})
    assert s.data_dir == Path("/var/lib/bzzz")


def test_db_url_alias_sets_store_url(tmp_path: Path) -> None:
    path = write(tmp_path, '[store]\nurl = "sqlite:///from-file.db"\n')
    s = load_settings(path, environ={"BZZZ_DB_URL": "postgresql+psycopg://a@b/c"})
    assert s.store.url == "postgresql+psycopg://a@b/c"
    assert s.database_url() == "postgresql+psycopg://a@b/c"


def test_json_env_value_for_dict_key() -> None:
    s = load_settings(environ={"BZZZ_RUNTIME__FLEET": '{"architect":1}'})
    assert s.runtime.fleet == {"architect": 1}


def test_json_env_value_replaces_file_dict(tmp_path: Path) -> None:
    path = write(tmp_path, "[runtime.fleet]\narchitect = 4\nreviewer = 4\n")
    s = load_settings(path, environ={"BZZZ_RUNTIME__FLEET": '{"reviewer": 1}'})
    assert s.runtime.fleet == {"reviewer": 1}


# --------------------------------------------------------------------------- errors


def problem_lines(exc: ConfigError) -> list[str]:
    return [line.strip() for line in str(exc).splitlines()[1:]]


def test_wrong_type_in_file_names_key_file_and_expectation(tmp_path: Path) -> None:
    path = write(tmp_path, '[runtime]\nmax_turns = "many"\n')
    with pytest.raises(ConfigError) as info:
        load_settings(path, environ={})
    msg = str(info.value)
    assert "'runtime.max_turns'" in msg
    assert f"config file {path}" in msg
    assert "valid integer" in msg
    assert "'many'" in msg


def test_out_of_range_value_in_file(tmp_path: Path) -> None:
    path = write(tmp_path, "[runtime]\nmax_turns = 1\n")
    with pytest.raises(ConfigError, match=r"'runtime\.max_turns'.*greater than or equal to 2"):
        load_settings(path, environ={})


def test_unknown_key_in_file(tmp_path: Path) -> None:
    path = write(tmp_path, "[runtime]\nmax_turn = 5\n")
    with pytest.raises(ConfigError) as info:
        load_settings(path, environ={})
    msg = str(info.value)
    assert "'runtime.max_turn'" in msg
    assert str(path) in msg
    assert "unknown key" in msg


def test_unknown_section_in_file(tmp_path: Path) -> None:
    path = write(tmp_path, "[runtme]\nmax_turns = 5\n")
    with pytest.raises(ConfigError, match=r"'runtme'.*unknown key"):
        load_settings(path, environ={})


def test_bad_enum_from_env_names_variable_and_choices() -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(environ={"BZZZ_MODEL__PROVIDER": "anthropic"})
    msg = str(info.value)
    assert "'model.provider'" in msg
    assert "environment variable BZZZ_MODEL__PROVIDER" in msg
    assert "'auto', 'openai' or 'demo'" in msg
    assert "'anthropic'" in msg
    assert "config file" not in msg


def test_env_error_is_attributed_to_env_even_when_file_has_the_section(tmp_path: Path) -> None:
    path = write(tmp_path, "[demo]\nlatency_ms = 5\n")
    with pytest.raises(ConfigError) as info:
        load_settings(path, environ={"BZZZ_DEMO__SEED": "abc"})
    (line,) = problem_lines(info.value)
    assert line.startswith("key 'demo.seed' in environment variable BZZZ_DEMO__SEED:")


def test_unknown_env_key() -> None:
    with pytest.raises(ConfigError, match=r"'runtime\.colour' in environment variable BZZZ_RUNTIME__COLOUR"):
        load_settings(environ={"BZZZ_RUNTIME__COLOUR": "blue"})


def test_malformed_json_env_for_dict_key() -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(environ={"BZZZ_RUNTIME__FLEET": "{architect: 1"})
    msg = str(info.value)
    assert "'runtime.fleet'" in msg
    assert "environment variable BZZZ_RUNTIME__FLEET" in msg
    assert "dictionary" in msg


def test_invalid_toml_names_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "[runtime\nmax_turns = 3\n")
    with pytest.raises(ConfigError) as info:
        load_settings(path, environ={})
    msg = str(info.value)
    assert str(path) in msg
    assert "not valid TOML" in msg
    assert "line 1" in msg


def test_explicit_missing_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    with pytest.raises(ConfigError, match=rf"config file {missing} does not exist"):
        load_settings(missing, environ={})


def test_bzzz_config_pointing_at_missing_file(tmp_path: Path) -> None:
    missing = tmp_path / "gone.toml"
    with pytest.raises(ConfigError, match="does not exist") as info:
        load_settings(environ={"BZZZ_CONFIG": str(missing)})
    assert str(missing) in str(info.value)


def test_several_problems_reported_together(tmp_path: Path) -> None:
    path = write(tmp_path, '[runtime]\nmax_turns = "many"\nbogus = 1\n[model]\nprovider = "x"\n')
    with pytest.raises(ConfigError) as info:
        load_settings(path, environ={"BZZZ_DEMO__SEED": "abc"})
    lines = problem_lines(info.value)
    assert str(info.value).startswith("invalid settings:")
    assert len(lines) == 4
    by_key = {line.split("'")[1]: line for line in lines}
    assert set(by_key) == {"runtime.max_turns", "runtime.bogus", "model.provider", "demo.seed"}
    assert f"config file {path}" in by_key["runtime.max_turns"]
    assert f"config file {path}" in by_key["runtime.bogus"]
    assert f"config file {path}" in by_key["model.provider"]
    assert "environment variable BZZZ_DEMO__SEED" in by_key["demo.seed"]


def test_config_error_is_a_value_error() -> None:
    assert issubclass(ConfigError, ValueError)


# --------------------------------------------------------------------------- overrides


def test_with_overrides_replaces_dotted_keys() -> None:
    base = Settings()
    s = base.with_overrides(store__url="sqlite:////tmp/x.db", runtime__max_turns=9, model__provider=None)
    assert s.store.url == "sqlite:////tmp/x.db"
    assert s.runtime.max_turns == 9
    assert s.model.provider == "auto"  # None means "not given"
    assert base.store.url is None  # the original is untouched
    assert s.database_url() == "sqlite:////tmp/x.db"


def test_with_overrides_keeps_other_values(tmp_path: Path) -> None:
    path = write(tmp_path, "[runtime]\nmax_turns = 11\n")
    s = load_settings(path, environ={}).with_overrides(demo__seed=3)
    assert s.runtime.max_turns == 11
    assert s.demo.seed == 3


def test_with_overrides_validates() -> None:
    with pytest.raises(ConfigError) as info:
        Settings().with_overrides(runtime__max_turns=1)
    msg = str(info.value)
    assert "'runtime.max_turns'" in msg
    assert "command line" in msg
    assert "greater than or equal to 2" in msg


# --------------------------------------------------------------------------- documentation of every field


def _walk(model: type[BaseModel], prefix: str = "") -> list[tuple[str, str | None]]:
    out: list[tuple[str, str | None]] = []
    docs = field_docs(model)
    for name, field in model.model_fields.items():
        dotted = f"{prefix}{name}"
        out.append((dotted, docs.get(name)))
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            out.extend(_walk(annotation, dotted + "."))
    return out


def test_every_setting_has_a_description() -> None:
    fields = _walk(Settings)
    # the walk really descends into the sections
    names = {name for name, _ in fields}
    assert {"model", "model.provider", "runtime.fleet", "store.url", "demo.seed", "data_dir"} <= names
    assert len(fields) >= 20
    undocumented = [name for name, description in fields if not (description and description.strip())]
    assert undocumented == []


# --------------------------------------------------------------------------- database url


def test_database_url_defaults_to_sqlite_under_data_dir(tmp_path: Path) -> None:
    s = Settings(data_dir=tmp_path / "data")
    assert s.resolved_data_dir() == tmp_path / "data"
    assert s.database_url() == f"sqlite:///{tmp_path / 'data' / 'bzzz.db'}"


def test_database_url_default_data_dir_is_platform_user_dir() -> None:
    from platformdirs import user_data_path

    expected = user_data_path("bzzz-console", appauthor=False) / "bzzz.db"
    assert Settings().database_url() == f"sqlite:///{expected}"


def test_data_dir_expands_user(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    s = Settings(data_dir=Path("~/bzzz"))
    assert s.resolved_data_dir() == tmp_path / "bzzz"
    assert s.database_url() == f"sqlite:///{tmp_path / 'bzzz' / 'bzzz.db'}"


def test_describe_settings_is_a_config_file_that_loads_back_to_the_same_settings(tmp_path: Path) -> None:
    from bzzz_console.config_docs import describe_settings

    custom = Settings().with_overrides(runtime__max_turns=9, store__url="sqlite:////tmp/x.db")
    path = tmp_path / "config.toml"
    path.write_text(describe_settings(custom), encoding="utf-8")
    assert load_settings(path, {}) == custom
