"""WSGI entry point for a production server: `gunicorn 'web.wsgi:app'`.

Each gunicorn worker process imports this module after the fork and so builds its
own app, database pool and Temporal client (which must not cross a fork).
"""

from web import create_app

app = create_app()
