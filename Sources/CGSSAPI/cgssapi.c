// Loads MIT libgssapi_krb5 at first use and forwards to it. See include/CGSSAPI.h for why.
#include "CGSSAPI.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

// DER bodies of the OIDs (without tag and length), as gss_OID_desc wants them.
static const cgss_OID_desc nt_hostbased_service = {10, (void *)"\x2a\x86\x48\x86\xf7\x12\x01\x02\x01\x04"};
static const cgss_OID_desc nt_user_name = {10, (void *)"\x2a\x86\x48\x86\xf7\x12\x01\x02\x01\x01"};
static const cgss_OID_desc nt_krb5_principal = {10, (void *)"\x2a\x86\x48\x86\xf7\x12\x01\x02\x02\x01"};
static const cgss_OID_desc mech_krb5 = {9, (void *)"\x2a\x86\x48\x86\xf7\x12\x01\x02\x02"};
static const cgss_OID_desc mech_spnego = {6, (void *)"\x2b\x06\x01\x05\x05\x02"};

const cgss_OID_desc *cgss_oid_nt_hostbased_service(void) { return &nt_hostbased_service; }
const cgss_OID_desc *cgss_oid_nt_user_name(void) { return &nt_user_name; }
const cgss_OID_desc *cgss_oid_nt_krb5_principal(void) { return &nt_krb5_principal; }
const cgss_OID_desc *cgss_oid_mech_krb5(void) { return &mech_krb5; }
const cgss_OID_desc *cgss_oid_mech_spnego(void) { return &mech_spnego; }

// MIT's gss_key_value_set (gssapi_ext.h), for gss_acquire_cred_from.
typedef struct { const char *key; const char *value; } kv_element;
typedef struct { OM_uint32 count; kv_element *elements; } kv_set;

typedef OM_uint32 (*acquire_cred_from_fn)(OM_uint32 *, cgss_name_t, OM_uint32, const cgss_OID_set_desc *,
                                          int, const kv_set *, cgss_cred_id_t *, cgss_OID_set *, OM_uint32 *);
typedef OM_uint32 (*accept_fn)(OM_uint32 *, cgss_ctx_id_t *, cgss_cred_id_t, const cgss_buffer_desc *, void *,
                               cgss_name_t *, cgss_OID *, cgss_buffer_desc *, OM_uint32 *, OM_uint32 *,
                               cgss_cred_id_t *);
typedef OM_uint32 (*init_fn)(OM_uint32 *, cgss_cred_id_t, cgss_ctx_id_t *, cgss_name_t, const cgss_OID_desc *,
                             OM_uint32, OM_uint32, void *, const cgss_buffer_desc *, cgss_OID *,
                             cgss_buffer_desc *, OM_uint32 *, OM_uint32 *);
typedef OM_uint32 (*import_name_fn)(OM_uint32 *, const cgss_buffer_desc *, const cgss_OID_desc *, cgss_name_t *);
typedef OM_uint32 (*display_name_fn)(OM_uint32 *, cgss_name_t, cgss_buffer_desc *, cgss_OID *);
typedef OM_uint32 (*display_status_fn)(OM_uint32 *, OM_uint32, int, const cgss_OID_desc *, OM_uint32 *,
                                       cgss_buffer_desc *);
typedef OM_uint32 (*inquire_context_fn)(OM_uint32 *, cgss_ctx_id_t, cgss_name_t *, cgss_name_t *, OM_uint32 *,
                                        cgss_OID *, OM_uint32 *, int *, int *);
typedef OM_uint32 (*delete_ctx_fn)(OM_uint32 *, cgss_ctx_id_t *, cgss_buffer_desc *);
typedef OM_uint32 (*release_cred_fn)(OM_uint32 *, cgss_cred_id_t *);
typedef OM_uint32 (*release_name_fn)(OM_uint32 *, cgss_name_t *);
typedef OM_uint32 (*release_buffer_fn)(OM_uint32 *, cgss_buffer_desc *);

static struct {
    acquire_cred_from_fn acquire_cred_from;
    accept_fn accept_sec_context;
    init_fn init_sec_context;
    import_name_fn import_name;
    display_name_fn display_name;
    display_status_fn display_status;
    inquire_context_fn inquire_context;
    delete_ctx_fn delete_sec_context;
    release_cred_fn release_cred;
    release_name_fn release_name;
    release_buffer_fn release_buffer;
} gss;

static pthread_once_t load_once = PTHREAD_ONCE_INIT;
static int loaded = 0;
static char load_error[512];

static void load_library(void) {
    static const char *const names[] = {
#if defined(__APPLE__)
        "libgssapi_krb5.2.2.dylib", "libgssapi_krb5.dylib",
#endif
        "libgssapi_krb5.so.2", "libgssapi_krb5.so",
    };
    void *h = NULL;
    const char *err = NULL;
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]) && h == NULL; i++) {
        h = dlopen(names[i], RTLD_NOW | RTLD_LOCAL);
        if (h == NULL && err == NULL) err = dlerror();
    }
    if (h == NULL) {
        snprintf(load_error, sizeof(load_error),
                 "MIT Kerberos GSS-API library not available (%s); install libgssapi-krb5-2",
                 err ? err : "dlopen failed");
        return;
    }
#define LOAD(field, sym)                                                                      \
    do {                                                                                      \
        *(void **)(&gss.field) = dlsym(h, sym);                                               \
        if (gss.field == NULL) {                                                              \
            snprintf(load_error, sizeof(load_error),                                          \
                     "libgssapi_krb5 has no %s (MIT Kerberos 1.11 or newer is needed)", sym); \
            return;                                                                           \
        }                                                                                     \
    } while (0)
    LOAD(acquire_cred_from, "gss_acquire_cred_from");
    LOAD(accept_sec_context, "gss_accept_sec_context");
    LOAD(init_sec_context, "gss_init_sec_context");
    LOAD(import_name, "gss_import_name");
    LOAD(display_name, "gss_display_name");
    LOAD(display_status, "gss_display_status");
    LOAD(inquire_context, "gss_inquire_context");
    LOAD(delete_sec_context, "gss_delete_sec_context");
    LOAD(release_cred, "gss_release_cred");
    LOAD(release_name, "gss_release_name");
    LOAD(release_buffer, "gss_release_buffer");
#undef LOAD
    loaded = 1;
}

int cgss_available(void) {
    pthread_once(&load_once, load_library);
    return loaded;
}

const char *cgss_load_error(void) {
    return cgss_available() ? NULL : load_error;
}

#define REQUIRE_LOADED()                  \
    do {                                  \
        if (!cgss_available()) {          \
            if (minor) *minor = 0;        \
            return CGSS_S_UNAVAILABLE;    \
        }                                 \
    } while (0)

OM_uint32 cgss_acquire_acceptor_cred(OM_uint32 *minor, const char *keytab, const char *rcache,
                                     cgss_cred_id_t *cred) {
    REQUIRE_LOADED();
    kv_element el[2] = {{"keytab", keytab}, {"rcache", rcache}};
    kv_set store = {rcache ? 2u : 1u, el};
    return gss.acquire_cred_from(minor, NULL, 0, NULL, CGSS_C_ACCEPT, &store, cred, NULL, NULL);
}

OM_uint32 cgss_acquire_initiator_cred(OM_uint32 *minor, const char *ccache, cgss_cred_id_t *cred) {
    REQUIRE_LOADED();
    kv_element el[1] = {{"ccache", ccache}};
    kv_set store = {ccache ? 1u : 0u, el};
    return gss.acquire_cred_from(minor, NULL, 0, NULL, CGSS_C_INITIATE, ccache ? &store : NULL, cred,
                                 NULL, NULL);
}

OM_uint32 cgss_accept_sec_context(OM_uint32 *minor, cgss_ctx_id_t *ctx, cgss_cred_id_t cred,
                                  const cgss_buffer_desc *input, cgss_name_t *src_name,
                                  cgss_OID *mech_type, cgss_buffer_desc *output,
                                  OM_uint32 *ret_flags, OM_uint32 *time_rec) {
    REQUIRE_LOADED();
    return gss.accept_sec_context(minor, ctx, cred, input, NULL, src_name, mech_type, output, ret_flags,
                                  time_rec, NULL);
}

OM_uint32 cgss_init_sec_context(OM_uint32 *minor, cgss_cred_id_t cred, cgss_ctx_id_t *ctx,
                                cgss_name_t target, const cgss_OID_desc *mech, OM_uint32 req_flags,
                                const cgss_buffer_desc *input, cgss_OID *actual_mech,
                                cgss_buffer_desc *output, OM_uint32 *ret_flags) {
    REQUIRE_LOADED();
    return gss.init_sec_context(minor, cred, ctx, target, mech, req_flags, 0, NULL, input, actual_mech,
                                output, ret_flags, NULL);
}

OM_uint32 cgss_import_name(OM_uint32 *minor, const char *name, const cgss_OID_desc *name_type,
                           cgss_name_t *out) {
    REQUIRE_LOADED();
    cgss_buffer_desc buf = {strlen(name), (void *)name};
    return gss.import_name(minor, &buf, name_type, out);
}

OM_uint32 cgss_display_name(OM_uint32 *minor, cgss_name_t name, cgss_buffer_desc *out) {
    REQUIRE_LOADED();
    return gss.display_name(minor, name, out, NULL);
}

OM_uint32 cgss_display_status(OM_uint32 *minor, OM_uint32 status, int status_type,
                              const cgss_OID_desc *mech, OM_uint32 *message_context,
                              cgss_buffer_desc *out) {
    REQUIRE_LOADED();
    return gss.display_status(minor, status, status_type, mech, message_context, out);
}

OM_uint32 cgss_inquire_context_mech(OM_uint32 *minor, cgss_ctx_id_t ctx, cgss_OID *mech, int *open) {
    REQUIRE_LOADED();
    return gss.inquire_context(minor, ctx, NULL, NULL, NULL, mech, NULL, NULL, open);
}

OM_uint32 cgss_delete_sec_context(OM_uint32 *minor, cgss_ctx_id_t *ctx) {
    REQUIRE_LOADED();
    return gss.delete_sec_context(minor, ctx, NULL);
}

OM_uint32 cgss_release_cred(OM_uint32 *minor, cgss_cred_id_t *cred) {
    REQUIRE_LOADED();
    return gss.release_cred(minor, cred);
}

OM_uint32 cgss_release_name(OM_uint32 *minor, cgss_name_t *name) {
    REQUIRE_LOADED();
    return gss.release_name(minor, name);
}

OM_uint32 cgss_release_buffer(OM_uint32 *minor, cgss_buffer_desc *buffer) {
    REQUIRE_LOADED();
    return gss.release_buffer(minor, buffer);
}
