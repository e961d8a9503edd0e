"""`python -m bot` is `inflight-guard`."""

from bot.cli import main

main()
