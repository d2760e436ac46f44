"""The {{ cookiecutter.package_name }} package: a fraud model with continuous deployment."""
