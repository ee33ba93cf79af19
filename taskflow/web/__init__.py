"""`taskflow web`: a page that shows a run as it happens and launches workers.

    snapshot.py   what the page shows, read from the store once per refresh period
    actions.py    what its buttons do (launch, stop, retry, invalidate, clean up)
    server.py     the HTTP server: access token, CSRF check, routes
    static.py     the page's assets, and `report --html` (the page as one file)
    assets/       the page itself (HTML, CSS, JavaScript), shipped in the package
"""
