// The real borg client with a prune key: what the prune role may and may not do.
import { defineRoleMatrix } from '../helpers/role-matrix.js';

defineRoleMatrix('prune');
