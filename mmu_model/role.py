"""union kvm_mmu_page_role (arch/x86/include/asm/kvm_host.h), the fields that matter for EPT.

Two shadow pages for the same gfn are the same page only if their whole role word matches.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Final

from .constants import ACC_ALL

__all__ = ["KvmMmuPageRole", "shadow_ept_root_role"]

# Bit positions of the v6.18 layout (low bits first).
_LEVEL_SHIFT = 0
_DIRECT_SHIFT = 7
_ACCESS_SHIFT = 8
_INVALID_SHIFT = 11
_AD_DISABLED_SHIFT = 16
_GUEST_MODE_SHIFT = 17
_DIRECT_KEY: Final = 1 << 3  # above the 3 access bits, in child()'s memo key


@dataclass(frozen=True, slots=True)
class KvmMmuPageRole:
    level: int
    direct: bool = False
    guest_mode: bool = True
    invalid: bool = False
    access: int = ACC_ALL
    ad_disabled: bool = False
    word: int = field(init=False, repr=False, compare=False)
    # Memo of child() and invalidated(), so hot paths reuse role objects: keyed by a
    # small int (direct, access), which needs no boxing.
    _children: dict[int, KvmMmuPageRole] = field(
        init=False, repr=False, compare=False, default_factory=dict
    )
    _invalid: KvmMmuPageRole | None = field(init=False, repr=False, compare=False,
                                            default=None)

    def __post_init__(self) -> None:
        object.__setattr__(self, "word", self._compute_word())

    def __eq__(self, other: object) -> bool:
        """Two roles are the same role iff their role.word matches, as in the kernel."""
        return isinstance(other, KvmMmuPageRole) and self.word == other.word

    def __hash__(self) -> int:
        return self.word

    def _compute_word(self) -> int:
        return (
            (self.level << _LEVEL_SHIFT)
            | (int(self.direct) << _DIRECT_SHIFT)
            | (self.access << _ACCESS_SHIFT)
            | (int(self.invalid) << _INVALID_SHIFT)
            | (int(self.ad_disabled) << _AD_DISABLED_SHIFT)
            | (int(self.guest_mode) << _GUEST_MODE_SHIFT)
        )

    @property
    def has_gptes(self) -> bool:
        """Model of mmu.c: sp_has_gptes(): indirect pages shadow a guest table."""
        return not self.direct

    def child(self, *, direct: bool = False, access: int = ACC_ALL) -> KvmMmuPageRole:
        """Model of mmu.c: kvm_mmu_child_role(): one level down, same guest_mode."""
        key = access | (_DIRECT_KEY if direct else 0)
        role = self._children.get(key)
        if role is None:
            role = replace(self, level=self.level - 1, direct=direct, access=access)
            self._children[key] = role
        return role

    def invalidated(self) -> KvmMmuPageRole:
        role = self._invalid
        if role is None:
            role = replace(self, invalid=True)
            object.__setattr__(self, "_invalid", role)
        return role

    def describe(self) -> str:
        """The role as KVM_MMU_PAGE_PRINTK in mmutrace.h prints it (trace-cmd report).

        Its role fields, in its order: "l%u %u-byte q%u%s %s%s %snxe %sad", i.e. level,
        gpte size, quadrant, " direct", the 3-letter access string (access_str[role.access]),
        " invalid", efer_nx (always 0 for a shadow EPT role: "!nxe") and ad_disabled.  The
        kernel prints nothing else of the role word: guest_mode in particular is set in
        every nested-EPT page's word but never printed (see unprinted_bits()).
        """
        access = _ACCESS_STR[self.access & ACC_ALL]
        direct = " direct" if self.direct else ""
        invalid = " invalid" if self.invalid else ""
        ad = "!" if self.ad_disabled else ""
        return f"l{self.level} 8-byte q0{direct} {access}{invalid} !nxe {ad}ad"

    def unprinted_bits(self) -> tuple[str, ...]:
        """Bits set in role.word that KVM_MMU_PAGE_PRINTK does not print."""
        return ("guest_mode",) if self.guest_mode else ()


# mmutrace.h: access_str[], indexed by role.access (ACC_EXEC_MASK 1, ACC_WRITE_MASK 2,
# ACC_USER_MASK 4).
_ACCESS_STR: Final = ("---", "--x", "w--", "w-x", "-u-", "-ux", "wu-", "wux")


_ROOT_ROLES: dict[int, KvmMmuPageRole] = {}  # one per level, so their memos are shared


def shadow_ept_root_role(level: int) -> KvmMmuPageRole:
    """Model of mmu.c: kvm_calc_shadow_ept_root_page_role(): guest_mode, indirect, ACC_ALL."""
    role = _ROOT_ROLES.get(level)
    if role is None:
        role = KvmMmuPageRole(level=level, direct=False, guest_mode=True, access=ACC_ALL)
        _ROOT_ROLES[level] = role
    return role
