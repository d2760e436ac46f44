"""Allow `python -m {{ cookiecutter.package_name }}`."""

import sys

from .cli import main

sys.exit(main())
