import pytest

from app.config import ENV_VARS, ConfigError, Settings, load_settings


def test_defaults_give_embedded_sqlite_and_private_redis() -> None:
    settings = load_settings({})
    assert settings.database_url is None
    assert settings.redis_url is None
    assert str(settings.sqlite_path).startswith("var")


def test_values_are_converted_to_their_types() -> None:
    settings = load_settings({"PORT": "9000", "OPSHUB_ACCESS_TOKEN_TTL_SECONDS": "60"})
    assert settings.port == 9000
    assert settings.access_token_ttl_seconds == 60


@pytest.mark.parametrize(
    ("environ", "variable"),
    [
        ({"PORT": "eighty"}, "PORT"),
        ({"PORT": "70000"}, "PORT"),
        ({"DATABASE_URL": "mysql://x"}, "DATABASE_URL"),
        ({"REDIS_URL": "http://x"}, "REDIS_URL"),
        ({"OPSHUB_ENV": "staging"}, "OPSHUB_ENV"),
        ({"OPSHUB_JWT_SECRET": "short"}, "OPSHUB_JWT_SECRET"),
        ({"OPSHUB_DATA_ENCRYPTION_KEYS": "not-a-key"}, "OPSHUB_DATA_ENCRYPTION_KEYS"),
        ({"OPSHUB_ENV": "production"}, "OPSHUB_JWT_SECRET"),
    ],
)
def test_a_wrong_value_names_the_variable_in_one_line(environ: dict[str, str], variable: str) -> None:
    with pytest.raises(ConfigError) as raised:
        load_settings(environ)
    message = str(raised.value.code)
    assert variable in message
    assert "\n" not in message


def test_env_example_lists_every_variable_with_its_default() -> None:
    from pathlib import Path

    text = (Path(__file__).parent.parent / ".env.example").read_text()
    defaults = Settings()
    for field, variable in ENV_VARS.items():
        assert f"{variable}=" in text, variable
        value = getattr(defaults, field)
        if field == "public_url":  # derived from HOST and PORT unless set: the example leaves it empty
            assert f"{variable}=\n" in text
            continue
        if value is not None and "SECRET" not in variable and "KEY" not in variable:
            assert f"{variable}={value}" in text, variable


def test_launcher_refuses_to_start_on_bad_config() -> None:
    import os
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "app.launcher", "check-config"],
        env={**os.environ, "PORT": "nope"},
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [result.stderr.strip()]
    assert "PORT" in result.stderr
