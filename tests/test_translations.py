"""Every string of the pages is translated into Chinese, and the compiled catalog the
app loads is the one built from the reviewed .po file."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

from babel.messages.mofile import read_mo, write_mo
from babel.messages.pofile import read_po

ROOT = Path(__file__).resolve().parent.parent
CATALOG = ROOT / "web" / "translations" / "zh_Hans_CN" / "LC_MESSAGES"


def extracted(tmp_path: Path):
    out = tmp_path / "messages.pot"
    subprocess.run([sys.executable, "-m", "babel.messages.frontend", "extract", "-F",
                    str(ROOT / "babel.cfg"), "-k", "_l", "-k", "N_", "-o", str(out),
                    "--no-location", "--omit-header", str(ROOT)], check=True,
                   capture_output=True, cwd=ROOT)
    return load(out)


def load(path: Path):
    with path.open("rb") as f:
        return read_po(f)


def key(message_id):
    return tuple(message_id) if isinstance(message_id, list) else message_id


def test_every_page_string_has_a_chinese_translation(tmp_path):
    template = extracted(tmp_path)
    catalog = load(CATALOG / "messages.po")
    assert len([m for m in template if m.id]) > 300
    missing, empty, fuzzy = [], [], []
    for message in template:
        if not message.id:
            continue
        translated = catalog.get(message.id)
        if translated is None:
            missing.append(message.id)
        elif translated.fuzzy:
            fuzzy.append(message.id)
        elif not translated.string or (isinstance(translated.string, tuple)
                                       and not all(translated.string)):
            empty.append(message.id)
    assert not missing, f"not in the zh catalog (run `make i18n`): {missing}"
    assert not fuzzy, f"fuzzy in the zh catalog: {fuzzy}"
    assert not empty, f"untranslated: {empty}"


def test_the_compiled_catalog_matches_the_po_file():
    catalog = load(CATALOG / "messages.po")
    built = io.BytesIO()
    write_mo(built, catalog)
    built.seek(0)
    fresh = {key(m.id): key(m.string) for m in read_mo(built) if m.id}
    with (CATALOG / "messages.mo").open("rb") as f:
        shipped = {key(m.id): key(m.string) for m in read_mo(f) if m.id}
    assert shipped == fresh, "messages.mo is stale: run `make i18n`"
