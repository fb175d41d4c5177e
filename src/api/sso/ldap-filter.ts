// Building LDAP search filters from a template and a value a person typed (their user name) or
// a DN from the directory. RFC 4515 escaping, so `*)(uid=*` is looked up as those characters and
// cannot widen, end or add to the filter.
//
// Never: puts an unescaped value into a filter.

/** RFC 4515 §3: '*', '(', ')', '\' and NUL as \XX; other bytes pass as they are (UTF-8 is fine). */
export function escapeFilterValue(value: string): string {
  return value.replace(/[*()\\\u0000]/g, (c) => `\\${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
}

/** The template with every `{user}` (or `{dn}`) replaced by the escaped value. */
export function fillFilter(template: string, placeholder: 'user' | 'dn', value: string): string {
  return template.split(`{${placeholder}}`).join(escapeFilterValue(value));
}
