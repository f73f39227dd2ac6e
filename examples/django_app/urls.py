from django.http import JsonResponse
from django.urls import path


def whoami(request):
    cert = request.client_certificate  # set by ClientCertificateMiddleware
    return JsonResponse(
        {
            "user": request.user.get_username(),
            "authenticated": request.user.is_authenticated,
            "subject": cert.subject,
            "verify": request.META["SSL_CLIENT_VERIFY"],
        }
    )


urlpatterns = [path("", whoami)]
