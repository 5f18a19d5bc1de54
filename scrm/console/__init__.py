"""The staff web console (/console/): server-rendered pages for operations, finance, marketing and admin.

``auth`` signs sessions and CSRF tokens, ``pages`` renders Jinja2 templates (``templates/``, autoescape on: one
``base.html`` layout, ``macros.html`` for tables/forms, ``charts.html`` for SVG charts from ``charts`` geometry),
``access`` says which role may use which page, ``web`` holds sign-in and the order pages. Pages read through each
capability's queries; every write goes through a service function, never straight to a table.
"""
