// The role matrix with the real borg client over borgkeep serve's embedded SSH gateway (the real ssh client).
import { defineRoleMatrix } from '../helpers/role-matrix.js';

defineRoleMatrix('full', 'embedded');
