"""The one place a PyGithub client is made: base URL, timeouts, bounded retries, no throttling sleeps."""

from __future__ import annotations

from github import Auth, Github, GithubRetry

DEFAULT_API = "https://api.github.com"
TIMEOUT = 10  # seconds per request; the publishing step as a whole has its own deadline


def retry_policy() -> GithubRetry:
    """5xx and secondary rate limits retried twice with backoff (Retry-After honoured, at most
    10 s); a permission 403 is not retried; a primary rate limit waits at most 10 s."""
    return GithubRetry(
        total=2,
        read=1,  # a read that timed out is tried once more: a silent GitHub costs 2 timeouts per call
        backoff_factor=0.5,
        status_forcelist=[500, 502, 503, 504],  # GithubRetry adds 403, retried only for rate limits
        secondary_rate_wait=5,
        max_rate_limit_wait=10,
    )


def make_client(token: str, api_url: str | None = None) -> Github:
    """Return a client for github.com or GHES (`https://HOST/api/v3`), from `GITHUB_API_URL`."""
    return Github(
        base_url=(api_url or DEFAULT_API).rstrip("/"),
        auth=Auth.Token(token),
        timeout=TIMEOUT,
        retry=retry_policy(),
        per_page=100,
        seconds_between_requests=None,
        seconds_between_writes=None,
        lazy=True,
    )
