"""People sign in to ``/governance`` through the site's authenticating reverse proxy.

The compliance officer's browser has no CDS Hooks JWT. When JWT authentication is on, a site
puts its single-sign-on proxy (oauth2-proxy, Apache mod_auth_openidc, an ingress with OIDC...)
in front of ``/governance``; the proxy signs the person in and passes their name in a header
(``KAP_CDS_GOVERNANCE_USER_HEADER``, e.g. ``X-Forwarded-User``). kap-cds believes that header
only on connections from ``KAP_CDS_GOVERNANCE_TRUSTED_PROXIES`` (the proxy's addresses), since
anyone else could set it. The page holds no patient data; the header never opens a CDS service.
"""

from __future__ import annotations

import ipaddress
import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass

from starlette.datastructures import Headers
from starlette.types import Scope

logger = logging.getLogger(__name__)

GOVERNANCE_PATH = "/governance"
# A user name as proxies send it (an e-mail address, a login, a DN's CN): nothing else is logged.
_USER = re.compile(r"^[\w.@+\- ]{1,128}$")

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class ProxyLogin:
    header: str
    proxies: tuple[Network, ...]

    @classmethod
    def build(cls, header: str | None, proxies: Iterable[str]) -> ProxyLogin | None:
        if not header:
            return None
        return cls(header, tuple(ipaddress.ip_network(p, strict=False) for p in proxies))

    def _from_proxy(self, scope: Scope) -> bool:
        client = scope.get("client")
        if not client:
            return False
        try:
            address = ipaddress.ip_address(client[0])
        except ValueError:
            return False
        return any(address in network for network in self.proxies)

    def user(self, scope: Scope, path: str) -> str | None:
        """The signed-in person for a ``/governance`` request through a trusted proxy, else
        None (then the request needs a JWT like any other)."""
        if path != GOVERNANCE_PATH:
            return None
        value = Headers(scope=scope).get(self.header)
        if value is None:
            return None
        if not self._from_proxy(scope):
            # Someone set the header without going through the proxy: worth a warning.
            logger.warning("governance: %s header from an untrusted address, ignored", self.header)
            return None
        user = value.strip()
        if not _USER.match(user):
            logger.info("governance: %s header is not a user name, ignored", self.header)
            return None
        logger.info("governance page opened by %s (signed in at the proxy)", user)
        return user
