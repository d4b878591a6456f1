"""One module per ``rtvoice`` subcommand, each with ``register(subparsers)``."""
