"""S3 credential methods: ``getApiKeys``, ``createApiKey``, ``deleteApiKey`` (spec §8.1).

The parameter is a user's ``uid`` (which the SDK first learns with the
``db get-multi`` call on ``{ctx}/api/users/<name>``), or for deletion the
key's own ``uid``.  End users manage their own keys; administrators anyone's.
Someone else's user or key is answered as if it did not exist.
"""

from __future__ import annotations

from portal.http.asgi import HttpError
from portal.http.execute import Call, method
from portal.store import NotFound, User
from portal.store import api_keys as _keys
from portal.store.api_keys import ApiKey
from wire import ctera_xml
from wire.ctera_xml import Obj, as_int, format_timestamp, obj


def _uid(param: ctera_xml.Value, what: str) -> int:
    value = as_int(param)
    if value is None:
        raise HttpError(400, f"{what} needs a uid")
    return value


def _user(call: Call, param: ctera_xml.Value) -> User:
    user_id = _uid(param, "the call")
    caller = call.session.user
    if user_id != caller.id and not caller.is_admin:
        raise HttpError(404, "Resource does not exist")
    for user in call.app.store.users():
        if user.id == user_id:
            return user
    raise HttpError(404, "Resource does not exist")


def _encode(key: ApiKey, secret: str | None = None) -> Obj:
    fields = obj("ApiKey", uid=key.id, accessKey=key.access_key, userUid=key.user_id,
                 creationDate=format_timestamp(key.created))
    if secret is not None:
        fields.fields["secretKey"] = secret
    return fields


@method("getApiKeys")
def get_api_keys(call: Call, param: ctera_xml.Value) -> list[ctera_xml.Value]:
    return [_encode(key) for key in _keys.of_user(call.app.store, _user(call, param).id)]


@method("createApiKey")
def create_api_key(call: Call, param: ctera_xml.Value) -> Obj:
    key, secret = _keys.create(call.app.store, _user(call, param).id)
    return _encode(key, secret)


@method("deleteApiKey")
def delete_api_key(call: Call, param: ctera_xml.Value) -> None:
    try:
        key = _keys.key(call.app.store, _uid(param, "deleteApiKey"))
    except NotFound:
        raise HttpError(404, "Resource does not exist") from None
    if key.user_id != call.session.user.id and not call.session.user.is_admin:
        raise HttpError(404, "Resource does not exist")
    _keys.delete(call.app.store, key.id)
