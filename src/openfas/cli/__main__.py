"""``python -m openfas.cli …`` (as ``torchrun … -m openfas.cli train …``) runs the ``openfas`` command line."""

from openfas.cli import main

if __name__ == "__main__":  # not when a package walk imports this module
    main()
