#!/usr/bin/env python3
"""Generates crates/nginx-model/src/directives.rs: nginx's directive table.

The table is data from nginx's interface, not its code: for every
`ngx_command_t` of every module in nginx's source tree, the directive's
name, its module (and that module's type), its `type` bits (contexts,
argument counts, block), the kind of `set` handler when it is one of the
generic `ngx_conf_set_*_slot`s (so that values and duplicates can be checked
as the slot does), the configuration level its value lives in, the field it
sets (duplicates of one field are "is duplicate"), and the values of
`ngx_conf_enum_t` / `ngx_conf_bitmask_t` lists and `ngx_conf_num_bounds_t`
posts.

Which modules are built in is a property of the binary, not of the source:
`BUILT` below is the list `strings /usr/sbin/nginx` shows for Debian's
nginx-light 1.22.1 (its `ngx_module_names`). Modules of the source that are
not built (stream, mail, the dynamic geoip/image_filter/xslt/perl modules,
google_perftools, ...) stay in the table with `built: false`: nginx-light
reports their directives as `unknown directive`, and so does the proxy.

Usage: tools/directives.py NGINX_SRC_DIR > src/directives.rs
(NGINX_SRC_DIR: `git archive release-1.22.1 src` of nginx/nginx, unpacked.)
"""

import os
import re
import sys

BUILT = set("""
ngx_core_module ngx_errlog_module ngx_conf_module ngx_openssl_module ngx_regex_module
ngx_events_module ngx_event_core_module ngx_epoll_module ngx_thread_pool_module
ngx_http_module ngx_http_core_module ngx_http_log_module ngx_http_upstream_module
ngx_http_v2_module ngx_http_static_module ngx_http_gzip_static_module ngx_http_dav_module
ngx_http_autoindex_module ngx_http_index_module ngx_http_random_index_module
ngx_http_mirror_module ngx_http_try_files_module ngx_http_auth_request_module
ngx_http_auth_basic_module ngx_http_access_module ngx_http_limit_conn_module
ngx_http_limit_req_module ngx_http_realip_module ngx_http_geo_module ngx_http_map_module
ngx_http_split_clients_module ngx_http_referer_module ngx_http_rewrite_module
ngx_http_ssl_module ngx_http_proxy_module ngx_http_fastcgi_module ngx_http_uwsgi_module
ngx_http_scgi_module ngx_http_grpc_module ngx_http_memcached_module
ngx_http_empty_gif_module ngx_http_browser_module ngx_http_secure_link_module
ngx_http_flv_module ngx_http_mp4_module ngx_http_upstream_hash_module
ngx_http_upstream_ip_hash_module ngx_http_upstream_least_conn_module
ngx_http_upstream_random_module ngx_http_upstream_keepalive_module
ngx_http_upstream_zone_module ngx_http_stub_status_module ngx_http_write_filter_module
ngx_http_header_filter_module ngx_http_chunked_filter_module ngx_http_v2_filter_module
ngx_http_range_header_filter_module ngx_http_gzip_filter_module
ngx_http_postpone_filter_module ngx_http_ssi_filter_module ngx_http_charset_filter_module
ngx_http_sub_filter_module ngx_http_addition_filter_module ngx_http_gunzip_filter_module
ngx_http_userid_filter_module ngx_http_headers_filter_module ngx_http_copy_filter_module
ngx_http_range_body_filter_module ngx_http_not_modified_filter_module
ngx_http_slice_filter_module
""".split())

CONSTS = {
    "NGX_CONF_NOARGS": 0x1, "NGX_CONF_TAKE1": 0x2, "NGX_CONF_TAKE2": 0x4, "NGX_CONF_TAKE3": 0x8,
    "NGX_CONF_TAKE4": 0x10, "NGX_CONF_TAKE5": 0x20, "NGX_CONF_TAKE6": 0x40, "NGX_CONF_TAKE7": 0x80,
    "NGX_CONF_TAKE12": 0x6, "NGX_CONF_TAKE13": 0xA, "NGX_CONF_TAKE23": 0xC, "NGX_CONF_TAKE123": 0xE,
    "NGX_CONF_TAKE1234": 0x1E, "NGX_CONF_BLOCK": 0x100, "NGX_CONF_FLAG": 0x200, "NGX_CONF_ANY": 0x400,
    "NGX_CONF_1MORE": 0x800, "NGX_CONF_2MORE": 0x1000, "NGX_DIRECT_CONF": 0x10000,
    "NGX_MAIN_CONF": 0x01000000, "NGX_ANY_CONF": 0xFF000000, "NGX_EVENT_CONF": 0x02000000,
    "NGX_HTTP_MAIN_CONF": 0x02000000, "NGX_HTTP_SRV_CONF": 0x04000000, "NGX_HTTP_LOC_CONF": 0x08000000,
    "NGX_HTTP_UPS_CONF": 0x10000000, "NGX_HTTP_SIF_CONF": 0x20000000, "NGX_HTTP_LIF_CONF": 0x40000000,
    "NGX_HTTP_LMT_CONF": 0x80000000, "NGX_STREAM_MAIN_CONF": 0x02000000, "NGX_STREAM_SRV_CONF": 0x04000000,
    "NGX_STREAM_UPS_CONF": 0x08000000, "NGX_MAIL_MAIN_CONF": 0x02000000, "NGX_MAIL_SRV_CONF": 0x04000000,
}

SLOTS = {
    "ngx_conf_set_flag_slot": "Flag", "ngx_conf_set_str_slot": "Str",
    "ngx_conf_set_str_array_slot": "Multi", "ngx_conf_set_keyval_slot": "Multi",
    "ngx_conf_set_num_slot": "Num", "ngx_conf_set_size_slot": "Size", "ngx_conf_set_off_slot": "Off",
    "ngx_conf_set_msec_slot": "Msec", "ngx_conf_set_sec_slot": "Sec", "ngx_conf_set_bufs_slot": "Bufs",
    "ngx_conf_set_enum_slot": "Enum", "ngx_conf_set_bitmask_slot": "Bitmask",
    "ngx_conf_set_path_slot": "Path", "ngx_conf_set_access_slot": "Access",
    "ngx_http_set_complex_value_slot": "Complex", "ngx_http_set_complex_value_size_slot": "Complex",
    "ngx_http_set_complex_value_zero_slot": "Complex",
}

MODTYPES = {"NGX_CORE_MODULE": "Core", "NGX_CONF_MODULE": "Conf", "NGX_EVENT_MODULE": "Event",
            "NGX_HTTP_MODULE": "Http", "NGX_STREAM_MODULE": "Stream", "NGX_MAIL_MODULE": "Mail"}


def strip_comments(s):
    return re.sub(r"/\*.*?\*/", "", s, flags=re.S)


def lists(src, ctype):
    """name -> [value strings] of `static ctype NAME[] = { { ngx_string("v"), ...}, ... };`"""
    out = {}
    for m in re.finditer(r"%s\s+(\w+)\[\]\s*=\s*\{(.*?)\n\};" % ctype, src, re.S):
        out[m.group(1)] = re.findall(r'ngx_string\("([^"]*)"\)', m.group(2))
    return out


def main(root):
    rows = []
    # Enum and bitmask lists may live in another file than the directive
    # (ngx_http_upstream_ignore_headers_masks): collect them all first.
    enums, masks = {}, {}
    for d, _, files in sorted(os.walk(root)):
        for f in sorted(files):
            if f.endswith(".c"):
                src = strip_comments(open(os.path.join(d, f), encoding="latin-1").read())
                enums.update(lists(src, "ngx_conf_enum_t"))
                masks.update(lists(src, "ngx_conf_bitmask_t"))
    for d, _, files in sorted(os.walk(root)):
        for f in sorted(files):
            if not f.endswith(".c"):
                continue
            src = strip_comments(open(os.path.join(d, f), encoding="latin-1").read())
            bounds = {m.group(1): (int(m.group(2)), int(m.group(3))) for m in re.finditer(
                r"ngx_conf_num_bounds_t\s+(\w+)\s*=\s*\{\s*ngx_conf_check_num_bounds,\s*(-?\d+),\s*(-?\d+)\s*\}", src)}
            mods = {m.group(2): (m.group(1), m.group(3)) for m in re.finditer(
                r"ngx_module_t\s+(\w+)\s*=\s*\{\s*NGX_MODULE_V1,\s*[^,]+,\s*(\w+),\s*(\w+)", src)}
            for m in re.finditer(r"ngx_command_t\s+(\w+)\[\]\s*=\s*\{(.*?)ngx_null_command", src, re.S):
                if m.group(1) not in mods:
                    continue
                module, mtype = mods[m.group(1)]
                for e in re.finditer(r"\{\s*ngx_string\(\"([^\"]+)\"\),(.*?)\}\s*,", m.group(2), re.S):
                    name = e.group(1)
                    fields = [x.strip() for x in e.group(2).split(",")]
                    ty = 0
                    for c in re.split(r"[|\s]+", fields[0]):
                        if c:
                            ty |= CONSTS[c]
                    handler, conf = fields[1], fields[2]
                    offset = ",".join(fields[3:-1]).replace(" ", "")
                    post = fields[-1].lstrip("&").split("[")[0]
                    slot = SLOTS.get(handler, "Custom")
                    values = []
                    if slot == "Enum":
                        values = enums.get(post, [])
                    elif slot == "Bitmask":
                        values = masks.get(post, [])
                    bound = bounds.get(post)
                    level = {"NGX_HTTP_MAIN_CONF_OFFSET": "Main", "NGX_HTTP_SRV_CONF_OFFSET": "Srv",
                             "NGX_HTTP_LOC_CONF_OFFSET": "Loc", "NGX_STREAM_MAIN_CONF_OFFSET": "Main",
                             "NGX_STREAM_SRV_CONF_OFFSET": "Srv", "NGX_MAIL_MAIN_CONF_OFFSET": "Main",
                             "NGX_MAIL_SRV_CONF_OFFSET": "Srv"}.get(conf, "Own")
                    rows.append((name, module, MODTYPES[mtype], module in BUILT, ty, slot, level,
                                 f"{module}.{offset}", handler, values, bound))
    print("// @generated by tools/directives.py from nginx 1.22.1's src/ (release-1.22.1);")
    print("// do not edit: regenerate. One row per ngx_command_t, in source order.")
    print("//! nginx 1.22.1's directive table, as data: see `tools/directives.py`.")
    print()
    print("use crate::directive::{Directive, ModType::*, Level::*, Slot::*};")
    print()
    print("pub const DIRECTIVES: &[Directive] = &[")
    for (name, module, mt, built, ty, slot, level, field, handler, values, bound) in rows:
        if slot == "Enum":
            s = "Enum(&[%s])" % ", ".join('"%s"' % v for v in values)
        elif slot == "Bitmask":
            s = "Bitmask(&[%s])" % ", ".join('"%s"' % v for v in values)
        elif slot == "Num" and bound:
            s = "NumBounded(%d, %d)" % bound
        else:
            s = slot
        print(f'    Directive {{ name: "{name}", module: "{module}", module_type: {mt}, built: {str(built).lower()}, '
              f'ty: 0x{ty:08x}, slot: {s}, level: {level}, field: "{field}", handler: "{handler}" }},')
    print("];")


if __name__ == "__main__":
    main(sys.argv[1])
