"""The watch loop: keep watched providers' credentials fresh and push renewed ones to remotes.

`sig watch start` runs it in the foreground; the proxy daemon runs the same `WatchLoop` in a thread.
"""
