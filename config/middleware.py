from django.conf import settings
from django.utils import translation


class StaffLanguageMiddleware:
    """Polish unless the user chose another language with the language switcher.

    Django's LocaleMiddleware would follow the browser's Accept-Language, and many
    Polish shop staff browse in English; the shop's language is the default here,
    the switcher's cookie the only override.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        chosen = request.COOKIES.get(settings.LANGUAGE_COOKIE_NAME)
        language = (
            chosen
            if chosen and translation.check_for_language(chosen)
            else settings.LANGUAGE_CODE
        )
        translation.activate(language)
        request.LANGUAGE_CODE = translation.get_language()
        response = self.get_response(request)
        response.headers.setdefault("Content-Language", request.LANGUAGE_CODE)
        vary = response.headers.get("Vary", "")
        if "cookie" not in vary.lower():
            response.headers["Vary"] = f"{vary}, Cookie" if vary else "Cookie"
        return response
