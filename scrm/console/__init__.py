"""The staff web console (/console/): server-rendered pages for operations — orders, picking and shipping, stock.

``auth`` signs sessions and CSRF tokens, ``render`` builds escaped HTML, ``queries`` holds the read-only listings,
``web`` the routes. Every write goes through a fulfilment service function, never straight to a table.
"""
