"""Validate the answers before anything is generated; one `ERROR:` line and exit 1 on a bad one."""

import json
import keyword
import re
import sys

# every answer arrives as JSON in a single-quoted raw string: tojson escapes every quote (' included), so no answer
# can end the string early, and the checks below see exactly what the user typed; the formatter must not turn
# them into double quotes, which the JSON itself starts with
# fmt: off
ANSWERS = {
    "project_name": r'{{ cookiecutter.project_name | tojson }}',
    "project_slug": r'{{ cookiecutter.project_slug | tojson }}',
    "package_name": r'{{ cookiecutter.package_name | tojson }}',
    "description": r'{{ cookiecutter.description | tojson }}',
    "target": r'{{ cookiecutter.target | tojson }}',
    "record_name": r'{{ cookiecutter.record_name | tojson }}',
    "author_name": r'{{ cookiecutter.author_name | tojson }}',
    "author_email": r'{{ cookiecutter.author_email | tojson }}',
    "github_owner": r'{{ cookiecutter.github_owner | tojson }}',
    "python_version": r'{{ cookiecutter.python_version | tojson }}',
    "min_auc": r'{{ cookiecutter.min_auc | tojson }}',
    "max_auc_drop": r'{{ cookiecutter.max_auc_drop | tojson }}',
}
# fmt: on

SUPPORTED_PYTHONS = ("3.10", "3.11", "3.12", "3.13")
DECIMAL = re.compile(r"(0|[1-9][0-9]*)(\.[0-9]+)?")  # a decimal that TOML and Python both read, pasted into both
# GitHub's rule for user and organisation names: alphanumerics and single inner dashes, at most 39 characters
GITHUB_OWNER = re.compile(r"[A-Za-z0-9](?:-?[A-Za-z0-9]){0,38}")
EMAIL = re.compile(r"[^@\s\"<>\\,;:()\[\]]+@[A-Za-z0-9.-]+")
# free text may hold any printable character, tabs and line breaks; never another control character
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")


DEFAULTS = {
    "project_name": "Fraud Detector",
    "project_slug": "fraud-detector",
    "package_name": "fraud_detector",
    "description": "",
    "target": "fraud",
    "record_name": "transaction",
    "author_name": "",
    "author_email": "you@example.com",
    "github_owner": "your-github-user",
    "python_version": "3.12",
    "min_auc": "0.80",
    "max_auc_drop": "0.01",
}


def problems(answers):
    """Return one message per invalid answer (empty when all are valid); unnamed answers take DEFAULTS."""
    answers = {**DEFAULTS, **answers}
    project_name, slug, package = answers["project_name"], answers["project_slug"], answers["package_name"]
    target, record_name, python = answers["target"], answers["record_name"], answers["python_version"]
    author_email, github_owner = answers["author_email"], answers["github_owner"]
    found = []
    if not project_name.strip() or "\n" in project_name or CONTROL.search(project_name) or len(project_name) > 80:
        found.append(f"project_name {project_name!r} must be one line of at most 80 characters, e.g. Fraud Detector")
    if not re.fullmatch(r"[a-z][a-z0-9]*(-[a-z0-9]+)*", slug):
        found.append(f"project_slug {slug!r} must be lowercase letters, digits and single dashes, e.g. fraud-detector")
    if not package.isidentifier() or package != package.lower() or not package.isascii():
        found.append(f"package_name {package!r} must be a lowercase Python identifier, e.g. fraud_detector")
    elif keyword.iskeyword(package) or package in sys.stdlib_module_names:
        found.append(f"package_name {package!r} is a Python keyword or standard-library module; pick another name")
    for key in ("description", "author_name"):
        if CONTROL.search(text := answers[key]):
            found.append(f"{key} {text!r} holds a control character; use printable text")
    if not EMAIL.fullmatch(author_email):
        found.append(f"author_email {author_email!r} must be one email address, e.g. you@example.com")
    if not GITHUB_OWNER.fullmatch(github_owner):
        found.append(f"github_owner {github_owner!r} must be a GitHub user or organisation name, e.g. acme-bank")
    if python not in SUPPORTED_PYTHONS:
        found.append(f"python_version {python!r} is not supported; choose one of {', '.join(SUPPORTED_PYTHONS)}")
    if not re.fullmatch(r"[a-z][a-z0-9_]{0,39}", target):
        found.append(f"target {target!r} must be one lowercase word (letters, digits, _), e.g. fraud or churn")
    if not re.fullmatch(r"[a-z][a-z ]{0,39}", record_name) or record_name.endswith(" "):
        found.append(f"record_name {record_name!r} must be lowercase words, e.g. transaction or customer")
    found += _number("min_auc", answers["min_auc"], lambda x: 0.5 < x < 1, "strictly between 0.5 and 1, e.g. 0.85")
    found += _number(
        "max_auc_drop", answers["max_auc_drop"], lambda x: 0 <= x < 0.5, "at least 0 and below 0.5, e.g. 0.01"
    )
    return found


def _number(name, text, valid, expected):
    """Check that ``text`` is a plain decimal number satisfying ``valid``."""
    if not DECIMAL.fullmatch(text):
        return [f"{name} {text!r} is not a plain decimal number; give a value {expected}"]
    return [] if valid(float(text)) else [f"{name} {text} is out of range; give a value {expected}"]


def main():
    """Exit 1 with the first problem found."""
    found = problems({key: json.loads(rendered) for key, rendered in ANSWERS.items()})
    if found:
        print(f"ERROR: {found[0]}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
