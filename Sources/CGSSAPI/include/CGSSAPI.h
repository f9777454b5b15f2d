// CGSSAPI: the few RFC 2744 (GSS-API C bindings) declarations tdsgate needs, plus thin
// wrappers that call MIT's libgssapi_krb5.so.2 through dlopen/dlsym.
//
// Why not <gssapi/gssapi.h>: that header ships in libkrb5-dev, which a machine that only
// runs tdsgate does not have. The runtime library (libgssapi-krb5-2) is all we need, and
// loading it at first use means tdsgate builds and runs without it; only Kerberos logins
// then fail, with cgss_load_error() saying why.
//
// The types below are ABI-identical to MIT's (RFC 2744 section 3 + MIT's gssapi_ext.h
// for gss_key_value_set). All functions are safe to call from any thread.
#ifndef CGSSAPI_H
#define CGSSAPI_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef uint32_t OM_uint32;

typedef struct cgss_buffer_desc_struct {
    size_t length;
    void *value;
} cgss_buffer_desc, *cgss_buffer_t;

typedef struct cgss_OID_desc_struct {
    OM_uint32 length;
    void *elements;
} cgss_OID_desc, *cgss_OID;

typedef struct cgss_OID_set_desc_struct {
    size_t count;
    cgss_OID elements;
} cgss_OID_set_desc, *cgss_OID_set;

// Opaque handles: pointers to library-owned structures.
typedef struct cgss_name_struct *cgss_name_t;
typedef struct cgss_cred_id_struct *cgss_cred_id_t;
typedef struct cgss_ctx_id_struct *cgss_ctx_id_t;

// Status codes (RFC 2744 section 3.9.1). Routine errors live in bits 16..23,
// supplementary info in bits 0..15.
#define CGSS_S_COMPLETE 0u
#define CGSS_C_ROUTINE_ERROR_OFFSET 16
#define CGSS_C_ROUTINE_ERROR_MASK 0xFFu
#define CGSS_ROUTINE_ERROR(x) ((x) & (CGSS_C_ROUTINE_ERROR_MASK << CGSS_C_ROUTINE_ERROR_OFFSET))
#define CGSS_S_BAD_MECH (1u << 16)
#define CGSS_S_BAD_NAME (2u << 16)
#define CGSS_S_BAD_NAMETYPE (3u << 16)
#define CGSS_S_BAD_BINDINGS (4u << 16)
#define CGSS_S_BAD_STATUS (5u << 16)
#define CGSS_S_BAD_SIG (6u << 16)
#define CGSS_S_NO_CRED (7u << 16)
#define CGSS_S_NO_CONTEXT (8u << 16)
#define CGSS_S_DEFECTIVE_TOKEN (9u << 16)
#define CGSS_S_DEFECTIVE_CREDENTIAL (10u << 16)
#define CGSS_S_CREDENTIALS_EXPIRED (11u << 16)
#define CGSS_S_CONTEXT_EXPIRED (12u << 16)
#define CGSS_S_FAILURE (13u << 16)
#define CGSS_S_UNAUTHORIZED (15u << 16)
#define CGSS_S_UNAVAILABLE (16u << 16)
#define CGSS_S_CONTINUE_NEEDED (1u << 0)
#define CGSS_S_DUPLICATE_TOKEN (1u << 1)
#define CGSS_S_OLD_TOKEN (1u << 2)

#define CGSS_C_GSS_CODE 1
#define CGSS_C_MECH_CODE 2

#define CGSS_C_BOTH 0
#define CGSS_C_INITIATE 1
#define CGSS_C_ACCEPT 2

#define CGSS_C_DELEG_FLAG 1u
#define CGSS_C_MUTUAL_FLAG 2u
#define CGSS_C_REPLAY_FLAG 4u
#define CGSS_C_SEQUENCE_FLAG 8u
#define CGSS_C_CONF_FLAG 16u
#define CGSS_C_INTEG_FLAG 32u

// OIDs (static storage; MIT compares OIDs by value, so ours work as well as its own).
// Functions rather than extern constants so Swift sees plain pointers.
const cgss_OID_desc *cgss_oid_nt_hostbased_service(void); // 1.2.840.113554.1.2.1.4
const cgss_OID_desc *cgss_oid_nt_user_name(void);         // 1.2.840.113554.1.2.1.1
const cgss_OID_desc *cgss_oid_nt_krb5_principal(void);    // 1.2.840.113554.1.2.2.1
const cgss_OID_desc *cgss_oid_mech_krb5(void);            // 1.2.840.113554.1.2.2
const cgss_OID_desc *cgss_oid_mech_spnego(void);          // 1.3.6.1.5.5.2

/// 1 when libgssapi_krb5 is loaded (loads it on first call), 0 otherwise.
int cgss_available(void);
/// Why loading failed (static string), or NULL when the library is available.
const char *cgss_load_error(void);

/// gss_acquire_cred_from with cred_store {"keytab": keytab[, "rcache": rcache]},
/// desired name GSS_C_NO_NAME (any principal in the keytab), usage ACCEPT.
OM_uint32 cgss_acquire_acceptor_cred(OM_uint32 *minor, const char *keytab,
                                     const char *rcache, cgss_cred_id_t *cred);
/// gss_acquire_cred_from with cred_store {"ccache": ccache} (NULL = the default ccache,
/// i.e. KRB5CCNAME), usage INITIATE, default mechanisms.
OM_uint32 cgss_acquire_initiator_cred(OM_uint32 *minor, const char *ccache,
                                      cgss_cred_id_t *cred);

OM_uint32 cgss_accept_sec_context(OM_uint32 *minor, cgss_ctx_id_t *ctx, cgss_cred_id_t cred,
                                  const cgss_buffer_desc *input, cgss_name_t *src_name,
                                  cgss_OID *mech_type, cgss_buffer_desc *output,
                                  OM_uint32 *ret_flags, OM_uint32 *time_rec);

OM_uint32 cgss_init_sec_context(OM_uint32 *minor, cgss_cred_id_t cred, cgss_ctx_id_t *ctx,
                                cgss_name_t target, const cgss_OID_desc *mech,
                                OM_uint32 req_flags, const cgss_buffer_desc *input,
                                cgss_OID *actual_mech, cgss_buffer_desc *output,
                                OM_uint32 *ret_flags);

OM_uint32 cgss_import_name(OM_uint32 *minor, const char *name, const cgss_OID_desc *name_type,
                           cgss_name_t *out);
/// gss_display_name; the text goes to *out (release with cgss_release_buffer).
OM_uint32 cgss_display_name(OM_uint32 *minor, cgss_name_t name, cgss_buffer_desc *out);
OM_uint32 cgss_display_status(OM_uint32 *minor, OM_uint32 status, int status_type,
                              const cgss_OID_desc *mech, OM_uint32 *message_context,
                              cgss_buffer_desc *out);
/// gss_inquire_context, reduced to the negotiated mechanism and "is it established".
OM_uint32 cgss_inquire_context_mech(OM_uint32 *minor, cgss_ctx_id_t ctx, cgss_OID *mech,
                                    int *open);
OM_uint32 cgss_delete_sec_context(OM_uint32 *minor, cgss_ctx_id_t *ctx);
OM_uint32 cgss_release_cred(OM_uint32 *minor, cgss_cred_id_t *cred);
OM_uint32 cgss_release_name(OM_uint32 *minor, cgss_name_t *name);
OM_uint32 cgss_release_buffer(OM_uint32 *minor, cgss_buffer_desc *buffer);

#ifdef __cplusplus
}
#endif

#endif
