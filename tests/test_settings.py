import os
import secrets
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

BASE_DIR = Path(__file__).resolve().parent.parent


def manage(*args, **env):
    return subprocess.run(  # noqa: S603
        [sys.executable, "manage.py", *args],
        cwd=BASE_DIR,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings.base", **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_deploy_check_passes_with_debug_off_and_a_real_secret_key():
    result = manage(
        "check",
        "--deploy",
        "--fail-level",
        "WARNING",
        DEBUG="false",
        SECRET_KEY=secrets.token_urlsafe(50),
        ALLOWED_HOSTS="crm.example.com",
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_debug_off_without_secret_key_refuses_to_start():
    env = {k: v for k, v in os.environ.items() if k != "SECRET_KEY"}
    result = subprocess.run(  # noqa: S603
        [sys.executable, "-c", "import config.settings.base"],
        cwd=BASE_DIR,
        env={**env, "DEBUG": "false", "ENV_FILE": "/dev/null"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert "SECRET_KEY" in result.stderr


def test_polish_catalogue_is_complete():
    """Polish is the default language: every string has a reviewed translation."""
    msgfmt = shutil.which("msgfmt")
    if msgfmt is None:
        pytest.skip("msgfmt (gettext) is not installed")
    catalogue = Path(__file__).parent.parent / "locale/pl/LC_MESSAGES/django.po"
    result = subprocess.run(  # noqa: S603 - fixed arguments
        [msgfmt, "--check", "--statistics", "-o", "/dev/null", str(catalogue)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "fuzzy" not in result.stderr
    assert "untranslated" not in result.stderr


def test_collectstatic_with_the_production_storage(tmp_path, settings):
    """What a deployment runs: hashed, compressed names for every referenced file.

    The manifest storage follows each file's references (CSS url(), a script's
    source map comment) and fails on one that is missing.
    """
    from django.core.management import call_command

    settings.STATIC_ROOT = tmp_path
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {
            "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        },
    }
    call_command("collectstatic", "--noinput", verbosity=0)
    assert (tmp_path / "staticfiles.json").exists()
