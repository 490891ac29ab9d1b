# SPDX-License-Identifier: Apache-2.0
"""`python -m exporter.cli`: the same entry point as the `dora-exporter` script."""

import sys

from exporter.cli.main import main

sys.exit(main())
