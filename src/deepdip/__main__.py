import sys

from deepdip.cli import main

sys.exit(main())
