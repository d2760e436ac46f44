"""The {{ cookiecutter.package_name }} package: a model with continuous deployment."""
