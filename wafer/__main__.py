import sys

from wafer.cli.main import main

sys.exit(main())
