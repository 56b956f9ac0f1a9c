"""``python -m slipway <verb>``: the same CLI as the ``slipway`` command."""

from slipway.cli import main

main()
