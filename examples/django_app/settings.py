"""A Django project whose users are their client certificates.

    export EXAMPLE_DB=/tmp/example.sqlite3
    django-admin migrate --settings django_app.settings --pythonpath .
    mutls serve django_app.wsgi:application --cert server.pem --key server.key \
        --client-cert optional --verify report --client-ca root.pem
"""

import os

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "only-for-the-example-" + "x" * 40)
DEBUG = False
ALLOWED_HOSTS = ["localhost", "127.0.0.1"]
ROOT_URLCONF = "django_app.urls"
INSTALLED_APPS = ["django.contrib.contenttypes", "django.contrib.auth", "django.contrib.sessions"]
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # after AuthenticationMiddleware: request.user becomes the certificate's user
    "mutls.frameworks.django.ClientCertificateMiddleware",
]
AUTHENTICATION_BACKENDS = ["mutls.frameworks.django.ClientCertificateBackend"]
MUTLS_USERNAME = "cn"  # or "email", "spiffe", ... (mutls serve --remote-user's names)
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("EXAMPLE_DB", os.path.join(os.path.dirname(__file__), "db.sqlite3")),
    }
}
USE_TZ = True
