import sys

from cinemri.cli import main

sys.exit(main())
