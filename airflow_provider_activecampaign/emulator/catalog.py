"""An account's catalog: user groups and their lists, lists, custom fields and tags."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from airflow_provider_activecampaign.emulator.base import AccountBase
from airflow_provider_activecampaign.emulator.errors import (
    ApiError,
    field_missing,
    invalid,
    not_found,
    unprocessable,
)
from airflow_provider_activecampaign.emulator.records import (
    CustomField,
    FieldOption,
    FieldRel,
    Group,
    ListGroup,
    MailingList,
    Tag,
)
from airflow_provider_activecampaign.emulator.rules import (
    FIELD_TYPES,
    OPTION_TYPES,
    as_text,
    field_value_problem,
    now_iso,
    perstag_for,
)


class Catalog(AccountBase):
    """User groups, lists, custom fields and tags."""

    # ---- users and groups --------------------------------------------------------------------

    def add_group(self, title: str, descript: str = "") -> Group:
        """Create a user group (permissions group); ActiveCampaign has no API to create these."""
        with self.lock:
            group = Group(id=self._new_id("groups"), title=title, descript=descript)
            self._groups[group.id] = group
            return group

    @property
    def groups(self) -> dict[str, Group]:
        with self.lock:
            return dict(self._groups)

    def set_group_limit(self, group_title: str, limit_contact: int, limit_list: int | None = None) -> Group:
        """Set a user group's contact limit (0: none); the bulk importer then refuses contacts that
        would take the group's lists over it."""
        with self.lock:
            group = self.group_by_title(group_title)
            if group is None:
                raise KeyError(f"no user group titled {group_title!r}")
            group.limit_contact = max(0, int(limit_contact))
            if limit_list is not None:
                group.limit_list = max(0, int(limit_list))
            return group

    def group_limits(self) -> list[dict[str, Any]]:
        """GET groupLimits."""
        with self.lock:
            return [g.limits_json() for g in self._groups.values()]

    def group_by_title(self, title: str) -> Group | None:
        with self.lock:
            return next((g for g in self._groups.values() if g.title == title), None)

    def add_list_group(self, list_id: object, group_id: object) -> ListGroup:
        """POST listGroups: give a user group access to a list (makes the list visible in the UI)."""
        with self.lock:
            lid, gid = str(list_id), str(group_id)
            if lid not in self._lists:
                raise not_found("_List", lid)
            if gid not in self._groups:
                raise not_found("Group", gid)
            if any(lg.list_id == lid and lg.group_id == gid for lg in self._list_groups.values()):
                raise unprocessable(
                    {
                        "title": "Duplicate entry",
                        "detail": f"List {lid} is already assigned to group {gid}",
                        "code": "duplicate",
                        "source": {"pointer": "/data/attributes/groupid"},
                    }
                )
            lg = ListGroup(id=self._new_id("listGroups"), list_id=lid, group_id=gid)
            self._list_groups[lg.id] = lg
            return lg

    @property
    def list_groups(self) -> dict[str, ListGroup]:
        with self.lock:
            return dict(self._list_groups)

    def list_group_ids(self, list_id: object) -> set[str]:
        """Ids of the user groups that can see ``list_id``."""
        with self.lock:
            return {lg.group_id for lg in self._list_groups.values() if lg.list_id == str(list_id)}

    # ---- lists -------------------------------------------------------------------------------

    def create_list(self, data: dict[str, Any]) -> MailingList:
        """POST lists: name, stringid, sender_url and sender_reminder are required; stringid unique."""
        with self.lock:
            missing = [k for k in ("name", "stringid", "sender_url", "sender_reminder") if not as_text(data.get(k))]
            if missing:
                raise unprocessable(*(field_missing(k, f"The list {k} was not provided.") for k in missing))
            stringid = as_text(data["stringid"])
            if any(lst.stringid == stringid for lst in self._lists.values()):
                raise unprocessable(
                    {
                        "title": "The list stringid is already in use",
                        "detail": f"A list with stringid '{stringid}' already exists",
                        "code": "duplicate",
                        "source": {"pointer": "/data/attributes/stringid"},
                    }
                )
            stamp = now_iso()
            known = {"name", "stringid", "sender_url", "sender_reminder"}
            lst = MailingList(
                id=self._new_id("lists"),
                name=as_text(data["name"]),
                stringid=stringid,
                sender_url=as_text(data["sender_url"]),
                sender_reminder=as_text(data["sender_reminder"]),
                cdate=stamp,
                udate=stamp,
                user_id=self.user.id,
                extra={k: v for k, v in data.items() if k not in known and not isinstance(v, dict | list)},
            )
            self._lists[lst.id] = lst
            self._list_members[lst.id] = []
            return lst

    def add_list(self, name: str, stringid: str | None = None, **data: Any) -> MailingList:
        """Test helper: create a list with sensible sender fields."""
        return self.create_list(
            {
                "name": name,
                "stringid": stringid or perstag_for(name).lower().replace("_", "-") or "list",
                "sender_url": data.pop("sender_url", "https://example.com"),
                "sender_reminder": data.pop("sender_reminder", "You signed up on example.com."),
                **data,
            }
        )

    def get_list(self, list_id: object) -> MailingList:
        with self.lock:
            lst = self._lists.get(str(list_id))
            if lst is None:
                raise not_found("_List", list_id)
            return lst

    @property
    def lists(self) -> dict[str, MailingList]:
        with self.lock:
            return dict(self._lists)

    def list_by_name(self, name: str) -> MailingList | None:
        """First list whose name equals ``name`` exactly (names need not be unique)."""
        with self.lock:
            return next((lst for lst in self._lists.values() if lst.name == name), None)

    def find_lists(self, name: str | None = None, op: str = "contains") -> list[MailingList]:
        """GET lists filter: ``filters[name]`` is a case-insensitive contains match (like it may be)."""
        with self.lock:
            lists = list(self._lists.values())
        if name is None:
            return lists
        needle = name.lower()
        tests: dict[str, Callable[[str], bool]] = {
            "contains": lambda v: needle in v,
            "eq": lambda v: v == needle,
            "neq": lambda v: v != needle,
            "starts_with": lambda v: v.startswith(needle),
            "lt": lambda v: v < needle,
            "lte": lambda v: v <= needle,
            "gt": lambda v: v > needle,
            "gte": lambda v: v >= needle,
        }
        test = tests.get(op, tests["contains"])
        return [lst for lst in lists if test(lst.name.lower())]

    # ---- custom fields -----------------------------------------------------------------------

    def create_field(self, data: dict[str, Any]) -> CustomField:
        """POST fields: title and type required; a duplicate title (or perstag) is refused."""
        with self.lock:
            missing = [k for k in ("title", "type") if not as_text(data.get(k))]
            if missing:
                raise unprocessable(*(field_missing(k) for k in missing))
            title, ftype = as_text(data["title"]), as_text(data["type"])
            if ftype not in FIELD_TYPES:
                raise unprocessable(invalid("type", f"Unknown field type '{ftype}'"))
            if any(f.title.lower() == title.lower() for f in self._fields.values()):
                raise unprocessable(
                    {
                        "title": "There is already a field with this title",
                        "detail": f"There is already a field named '{title}' -- choose another name",
                        "code": "duplicate",
                    }
                )
            perstag = perstag_for(as_text(data.get("perstag")) or title)
            if any(f.perstag == perstag for f in self._fields.values()):
                raise unprocessable(
                    {
                        "title": "There is already a field with this personalization tag",
                        "detail": f"There is already a field with the tag '%{perstag}%'",
                        "code": "duplicate",
                        "source": {"pointer": "/data/attributes/perstag"},
                    }
                )
            fld = CustomField(
                id=self._new_id("fields"),
                title=title,
                type=ftype,
                perstag=perstag,
                descript=as_text(data.get("descript")),
                defval=as_text(data.get("defval")),
                visible=as_text(data.get("visible", "1")),
                ordernum=as_text(data.get("ordernum", "1")),
                cdate=now_iso(),
            )
            self._fields[fld.id] = fld
            return fld

    def add_field(
        self, title: str, perstag: str | None = None, field_type: str = "text", options: Iterable[str] = ()
    ) -> CustomField:
        """Test helper: create a custom field (and its fieldRel to all lists), with ``options``."""
        with self.lock:
            fld = self.create_field({"title": title, "type": field_type, "perstag": perstag or ""})
            self.create_field_rel({"field": fld.id, "relid": 0})
            values = list(options)
            if values:
                self.create_field_options([{"field": fld.id, "value": v, "label": v} for v in values])
            return fld

    def get_field(self, field_id: object) -> CustomField:
        with self.lock:
            fld = self._fields.get(str(field_id))
            if fld is None:
                raise not_found("Field", field_id)
            return fld

    def field_json(self, fld: CustomField) -> dict[str, Any]:
        """A field as GET fields renders it: with the ids of its options and relations."""
        with self.lock:
            return {
                **fld.to_json(),
                "options": [o.id for o in self._options_of(fld.id)],
                "relations": [r.id for r in self._field_rels.values() if r.field_id == fld.id],
            }

    def create_field_options(self, items: Any) -> list[FieldOption]:
        """POST fieldOption/bulk: options for dropdown, radio, checkbox and listbox fields.

        All or nothing: any bad item refuses the whole request. A value a field already has is
        refused as a duplicate.
        """
        with self.lock:
            if not isinstance(items, list) or not items or not all(isinstance(i, dict) for i in items):
                raise ApiError(
                    422, {"errors": "Bulk operation failed. Request must contain an array of fieldOption objects."}
                )
            seen: set[tuple[str, str]] = set()
            for item in items:
                fid, value = as_text(item.get("field")), as_text(item.get("value"))
                if not fid or not value:
                    raise unprocessable(*(field_missing(k) for k in ("field", "value") if not as_text(item.get(k))))
                fld = self.get_field(fid)
                if fld.type not in OPTION_TYPES:
                    raise unprocessable(invalid("field", f"Field {fid} is a {fld.type} field, which has no options"))
                if (fid, value) in seen or any(o.value == value for o in self._options_of(fid)):
                    raise unprocessable(
                        {
                            "title": "Duplicate entry",
                            "detail": f"Field {fid} already has an option with the value '{value}'",
                            "code": "duplicate",
                            "source": {"pointer": "/data/attributes/value"},
                        }
                    )
                seen.add((fid, value))
            stamp = now_iso()
            created = []
            for item in items:
                fid = as_text(item["field"])
                order = item.get("orderid")
                option = FieldOption(
                    id=self._new_id("fieldOptions"),
                    field_id=fid,
                    value=as_text(item["value"]),
                    label=as_text(item.get("label")) or as_text(item["value"]),
                    orderid=int(order) if str(order or "").isdigit() else len(self._options_of(fid)) + 1,
                    isdefault=as_text(item.get("isdefault")) in ("1", "true"),
                    cdate=stamp,
                )
                self._field_options[option.id] = option
                created.append(option)
            return created

    def field_options(self, field_id: object) -> list[FieldOption]:
        """A field's options in display order (GET fields/{id}/options)."""
        with self.lock:
            return self._options_of(self.get_field(field_id).id)

    def _options_of(self, field_id: str) -> list[FieldOption]:
        return sorted((o for o in self._field_options.values() if o.field_id == field_id), key=lambda o: o.orderid)

    def value_problem(self, field_id: str, value: str) -> str | None:
        """Why ``value`` cannot be stored in the field (ActiveCampaign's formats), or None."""
        fld = self._fields[field_id]
        options = {o.value for o in self._options_of(field_id)} if fld.type in OPTION_TYPES else set()
        return field_value_problem(fld.type, value, options)

    @property
    def fields(self) -> dict[str, CustomField]:
        with self.lock:
            return dict(self._fields)

    def field_by_perstag(self, perstag: str) -> CustomField | None:
        with self.lock:
            tag = perstag.strip("%").upper()
            return next((f for f in self._fields.values() if f.perstag == tag), None)

    def create_field_rel(self, data: dict[str, Any]) -> FieldRel:
        """POST fieldRels: attach a field to a list (relid 0: all lists; needed for UI visibility)."""
        with self.lock:
            missing = [k for k in ("field", "relid") if as_text(data.get(k)) == ""]
            if missing:
                raise unprocessable(*(field_missing(k) for k in missing))
            fid, relid = str(data["field"]), str(data["relid"])
            if fid not in self._fields:
                raise not_found("Field", fid)
            if relid != "0" and relid not in self._lists:
                raise not_found("_List", relid)
            rel = FieldRel(id=self._new_id("fieldRels"), field_id=fid, relid=relid, cdate=now_iso())
            self._field_rels[rel.id] = rel
            return rel

    @property
    def field_rels(self) -> dict[str, FieldRel]:
        with self.lock:
            return dict(self._field_rels)

    # ---- tags --------------------------------------------------------------------------------

    def create_tag(self, data: dict[str, Any]) -> Tag:
        """POST tags: names are unique case-insensitively."""
        with self.lock:
            name = as_text(data.get("tag")).strip()
            if not name:
                raise unprocessable(field_missing("tag"))
            if name.lower() in self._tags_by_name:
                raise unprocessable(
                    {
                        "title": "Duplicate entry",
                        "detail": f"A tag named '{name}' already exists",
                        "code": "duplicate",
                        "source": {"pointer": "/data/attributes/tag"},
                    }
                )
            return self._make_tag(name, as_text(data.get("tagType")) or "contact", as_text(data.get("description")))

    def _make_tag(self, name: str, tag_type: str = "contact", description: str = "") -> Tag:
        tag = Tag(id=self._new_id("tags"), tag=name, tag_type=tag_type, description=description, cdate=now_iso())
        self._tags[tag.id] = tag
        self._tags_by_name[name.lower()] = tag
        return tag

    @property
    def tags(self) -> dict[str, Tag]:
        with self.lock:
            return dict(self._tags)

    def tag_by_name(self, name: str) -> Tag | None:
        with self.lock:
            return self._tags_by_name.get(name.strip().lower())

    def find_tags(self, search: str | None) -> list[Tag]:
        """GET tags?search=: case-insensitive contains."""
        with self.lock:
            tags = list(self._tags.values())
        if not search:
            return tags
        needle = search.lower()
        return [t for t in tags if needle in t.tag.lower()]
