"""Sign-in and scope: principals (municipal staff, J-LIS operators, agencies), argon2 passwords, web
sessions and API tokens. See docs/web.md."""

from jlis.auth.models import Principal, PrincipalKind

__all__ = ["Principal", "PrincipalKind"]
