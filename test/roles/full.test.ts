// The real borg client with a full key: what the full role may and may not do.
import { defineRoleMatrix } from '../helpers/role-matrix.js';

defineRoleMatrix('full');
