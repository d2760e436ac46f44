"""Jinja extensions for this template: answers stay data, wherever they come from.

cookiecutter renders every value of cookiecutter.json as a Jinja template, and with `--no-input`, a replay file or
`extra_context` the user's answers take the defaults' place, so an answer holding `{{ ... }}` would run Python at
bake time. `SandboxedAnswers` turns cookiecutter's environment into Jinja's sandbox: attribute access, calls and
operators go through SandboxedEnvironment's checks, so no answer reaches Python internals. `toml_string` writes an
answer as a TOML basic string that TOML parsers accept, whatever characters it holds.
"""

from __future__ import annotations

from jinja2.exceptions import SecurityError, UndefinedError
from jinja2.ext import Extension
from jinja2.sandbox import SandboxedEnvironment, safe_range

# TOML forbids these raw in a basic string: every control character but tab, and DEL
_TOML_ESCAPES = {code: f"\\u{code:04X}" for code in [*range(0x20), 0x7F]}
_TOML_ESCAPES.update({ord("\\"): "\\\\", ord('"'): '\\"', ord("\n"): "\\n", ord("\t"): "\\t", ord("\r"): "\\r"})


def toml_string(value: object) -> str:
    """``value`` as a TOML basic string, quotes included; unicode stays as it is (TOML has no surrogate escapes)."""
    return '"' + str(value).translate(_TOML_ESCAPES) + '"'


class UnsafeAnswerError(SecurityError, UndefinedError):
    """An answer reached for something the sandbox forbids; an UndefinedError, so cookiecutter reports it plainly."""


class _Sandbox(SandboxedEnvironment):
    """Jinja's sandbox, reporting a forbidden attribute as an error cookiecutter prints without a traceback."""

    def unsafe_undefined(self, obj, attribute):
        """Refuse ``obj.attribute`` with a message naming both."""
        message = f"access to attribute {attribute!r} of {type(obj).__name__!r} object is unsafe"
        return self.undefined(message, name=attribute, obj=obj, exc=UnsafeAnswerError)


class SandboxedAnswers(Extension):
    """Make cookiecutter's environment a Jinja sandbox, and add the escaping filters the template uses."""

    def __init__(self, environment):
        super().__init__(environment)
        # extensions load inside Environment.__init__, before any template is compiled, so every template this
        # environment compiles afterwards is sandboxed code
        environment.__class__ = type("SandboxedCookiecutterEnvironment", (_Sandbox, type(environment)), {})
        environment.globals["range"] = safe_range
        environment.binop_table = SandboxedEnvironment.default_binop_table.copy()
        environment.unop_table = SandboxedEnvironment.default_unop_table.copy()
        environment.filters["toml_string"] = toml_string
