"""Staff accounts: sign-in with a second factor, lock-out, idle sessions, passwords.

- ``middleware``: an idle session is signed out; a signed-in user without the second
  factor counts as anonymous everywhere but the second-factor pages themselves.
- ``views``/``forms``: sign-in, the second factor (enrolment with a QR code, the
  code or a recovery code), recovery codes, password change and reset.
- ``devices``: the authenticator app (django-otp's TOTP device) and the recovery
  codes (its static device) of a user.
"""
