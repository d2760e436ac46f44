"""Validate the answers before anything is generated; one `ERROR:` line and exit 1 on a bad one."""

import keyword
import re
import sys

PROJECT_SLUG = "{{ cookiecutter.project_slug }}"
PACKAGE_NAME = "{{ cookiecutter.package_name }}"
PYTHON_VERSION = "{{ cookiecutter.python_version }}"
MIN_AUC = "{{ cookiecutter.min_auc }}"
MAX_AUC_DROP = "{{ cookiecutter.max_auc_drop }}"
TARGET = "{{ cookiecutter.target }}"
RECORD_NAME = "{{ cookiecutter.record_name }}"

SUPPORTED_PYTHONS = ("3.10", "3.11", "3.12", "3.13")


def problems(slug, package, python, min_auc, max_auc_drop, target="fraud", record_name="transaction"):
    """Return one message per invalid answer (empty when all are valid)."""
    found = []
    if not re.fullmatch(r"[a-z][a-z0-9]*(-[a-z0-9]+)*", slug):
        found.append(f"project_slug {slug!r} must be lowercase letters, digits and single dashes, e.g. fraud-detector")
    if not package.isidentifier() or package != package.lower() or not package.isascii():
        found.append(f"package_name {package!r} must be a lowercase Python identifier, e.g. fraud_detector")
    elif keyword.iskeyword(package) or package in sys.stdlib_module_names:
        found.append(f"package_name {package!r} is a Python keyword or standard-library module; pick another name")
    if python not in SUPPORTED_PYTHONS:
        found.append(f"python_version {python!r} is not supported; choose one of {', '.join(SUPPORTED_PYTHONS)}")
    if not re.fullmatch(r"[a-z][a-z0-9_]{0,39}", target):
        found.append(f"target {target!r} must be one lowercase word (letters, digits, _), e.g. fraud or churn")
    if not re.fullmatch(r"[a-z][a-z ]{0,39}", record_name) or record_name.endswith(" "):
        found.append(f"record_name {record_name!r} must be lowercase words, e.g. transaction or customer")
    found += _number("min_auc", min_auc, lambda x: 0.5 < x < 1, "strictly between 0.5 and 1, e.g. 0.85")
    found += _number("max_auc_drop", max_auc_drop, lambda x: 0 <= x < 0.5, "at least 0 and below 0.5, e.g. 0.01")
    return found


def _number(name, text, valid, expected):
    """Check that ``text`` is a number satisfying ``valid``."""
    try:
        value = float(text)
    except ValueError:
        return [f"{name} {text!r} is not a number; give a value {expected}"]
    return [] if valid(value) and value == value else [f"{name} {text} is out of range; give a value {expected}"]


def main():
    """Exit 1 with the first problem found."""
    found = problems(PROJECT_SLUG, PACKAGE_NAME, PYTHON_VERSION, MIN_AUC, MAX_AUC_DROP, TARGET, RECORD_NAME)
    if found:
        print(f"ERROR: {found[0]}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
