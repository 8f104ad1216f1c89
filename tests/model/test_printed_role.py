"""What a reviewer sees in `trace-cmd report`: roles as KVM_MMU_PAGE_PRINTK prints them.

mmutrace.h prints a shadow page's role with
    "l%u %u-byte q%u%s %s%s %snxe %sad"
from role.level, has_4_byte_gpte ? 4 : 8, role.quadrant, role.direct ? " direct" : "",
access_str[role.access] (3 letters, "---" ... "wux"), role.invalid ? " invalid" : "",
role.efer_nx ? "" : "!" and role.ad_disabled ? "!" : "".  Nothing else of the role word,
in particular not guest_mode, is printed.
"""

from __future__ import annotations

import dataclasses

import pytest

from mmu_model.constants import ACC_ALL, ACC_EXEC_MASK, ACC_USER_MASK, ACC_WRITE_MASK
from mmu_model.narration import narrate
from mmu_model.role import shadow_ept_root_role
from mmu_model.trace import count_trace_lines


@pytest.mark.parametrize(
    ("changes", "text"),
    [
        # kvm_calc_shadow_ept_root_page_role(): level 4, 8-byte gptes, quadrant 0, indirect,
        # ACC_ALL (access_str[7] "wux"), efer_nx 0 ("!nxe"), A/D enabled ("ad").
        ({}, "l4 8-byte q0 wux !nxe ad"),
        # A level-1 child (kvm_mmu_child_role): only the level changes.
        ({"level": 1}, "l1 8-byte q0 wux !nxe ad"),
        # direct is appended to the quadrant (" direct"), before the access string.
        ({"level": 1, "direct": True}, "l1 8-byte q0 direct wux !nxe ad"),
        # access_str[ACC_EXEC_MASK | ACC_USER_MASK] = access_str[5] = "-ux".
        ({"access": ACC_EXEC_MASK | ACC_USER_MASK}, "l4 8-byte q0 -ux !nxe ad"),
        ({"access": ACC_WRITE_MASK}, "l4 8-byte q0 w-- !nxe ad"),
        # " invalid" right after the access string; "!ad" when ad_disabled.
        ({"invalid": True, "ad_disabled": True}, "l4 8-byte q0 wux invalid !nxe !ad"),
    ],
)
def test_role_prints_as_kvm_mmu_page_printk(changes, text):
    """The role text is exactly the role part of KVM_MMU_PAGE_PRINTK: no "guest" word, even
    though guest_mode is set in every one of these role words."""
    role = dataclasses.replace(shadow_ept_root_role(4), **changes)
    assert role.guest_mode
    assert role.access & ACC_ALL == role.access
    assert role.describe() == text
    assert role.unprinted_bits() == ("guest_mode",)


def test_narration_says_guest_mode_is_not_printed():
    """A new page's narration says its role carries guest_mode, which the tracepoint omits."""
    text = narrate("kvm_mmu_get_page", {"sp": 3, "created": True, "parent": 2, "index": 0},
                   lambda i: f"#{i}")
    assert "guest_mode" in text
    assert "does not print" in text


@pytest.mark.parametrize(("text", "lines"), [
    ("", 0),
    ("a", 1),
    ("a\n", 1),       # the final newline ends line 1; it does not start line 2
    ("a\nb\n", 2),
    ("a\n\n", 2),     # an empty second line, then its newline
    ("a\nb", 2),
])
def test_count_trace_lines_does_not_count_a_trailing_newline(text, lines):
    """Lines are what parse_trace() numbers: text.split("\\n") without the empty string a
    final newline leaves (not text.count("\\n") + 1)."""
    assert count_trace_lines(text) == lines
