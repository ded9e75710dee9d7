"""Helpers the command-line tests share."""


def one_error_line(err, *words):
    """The one line a failed command printed on stderr (no traceback, no raw ``[Errno N]``), holding ``words``."""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err and "Errno" not in err, err
    for word in words:
        assert word in lines[0], err
    return lines[0]
