"""A helper the model-file tests share: a zip file copied with its members changed, CRCs valid."""

import zipfile


def rezip(src, dst, change, compression=zipfile.ZIP_STORED):
    """Copy the zip ``src`` to ``dst`` with each member's bytes passed through ``change(name, data)``, which
    returns the new bytes or None to leave the member out; the CRCs are computed again. Returns ``dst``."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", compression) as zout:
        for item in zin.infolist():
            data = change(item.filename, zin.read(item.filename))
            if data is not None:
                zout.writestr(item.filename, data)
    return dst
