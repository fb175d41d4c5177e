// The real borg client with a read key: what the read role may and may not do.
import { defineRoleMatrix } from '../helpers/role-matrix.js';

defineRoleMatrix('read');
