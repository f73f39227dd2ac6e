"""The door module's constants (``mutls.tls._openssl``) against OpenSSL's own headers: a C
program built with gcc prints each macro's value, and every one must match."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from mutls.tls import _openssl

from tools import need

#: module names that are not OpenSSL macros of that name.
NOT_MACROS = {"MIN_VERSION", "STORE_CTX_SSL_INDEX", "OPENSSL_VERSION_TEXT", "VERSION"}


def constants() -> dict[str, int]:
    return {
        name: value
        for name, value in vars(_openssl).items()
        if name.isupper() and isinstance(value, int) and name not in NOT_MACROS
    }


def test_every_constant_is_the_headers_value(tmp_path: Path) -> None:
    need("gcc", "/usr/include/openssl/ssl.h")
    names = constants()
    assert "SSL_TLSEXT_ERR_ALERT_FATAL" in names and len(names) > 30
    lines = "\n".join(
        f'    printf("%s %llu\\n", "{name}", (unsigned long long)({name}));' for name in names
    )
    source = tmp_path / "constants.c"
    source.write_text(
        "#include <stdio.h>\n#include <openssl/ssl.h>\n#include <openssl/x509_vfy.h>\n"
        "#include <openssl/crypto.h>\n#include <openssl/x509v3.h>\n"
        f"int main(void) {{\n{lines}\n    return 0;\n}}\n"
    )
    binary = tmp_path / "constants"
    built = subprocess.run(
        ["gcc", "-o", str(binary), str(source)], capture_output=True, text=True, timeout=120
    )
    if built.returncode != 0:
        pytest.fail(f"a constant is no macro of OpenSSL's headers: {built.stderr[-1500:]}")
    printed = subprocess.run([str(binary)], capture_output=True, text=True, timeout=30).stdout
    headers = {name: int(value) for name, value in (line.split() for line in printed.splitlines())}
    assert {n: v for n, v in names.items() if headers[n] != v} == {}
