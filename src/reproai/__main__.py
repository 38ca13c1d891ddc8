import sys

from reproai.cli import main

sys.exit(main())
