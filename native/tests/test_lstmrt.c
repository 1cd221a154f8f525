/*
 * The C library's own tests, no Python: every layer kind against a small double-precision reference written
 * from the equations (docs/math.md, lstmrt.h), the streaming invariants, and every error path.
 *
 *   test_lstmrt              all tests; closing line "N passed, M failed"; exit status 1 on any failure
 *   test_lstmrt --cycles N   N rounds of create / step / run / copy / predict / free over every model kind, plus
 *                            failing calls: the workload `make valgrind` checks for leaks and invalid accesses
 *
 * No framework: a test case is a function; CHECK records a failure with its line and the current context and
 * goes on, so one run reports every broken invariant. This file is the runner; the cases are in test_*.c by
 * topic (cases.h), on the harness (harness.h), the model specs (spec.h) and the float64 reference
 * (reference.h).
 */
#include "cases.h"
#include "harness.h"

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc == 3 && strcmp(argv[1], "--cycles") == 0) {
        char *end = NULL;
        const long cycles = strtol(argv[2], &end, 10);
        if (!end || *end != '\0' || cycles < 0) {
            fprintf(stderr, "usage: %s [--cycles N]\n", argv[0]);
            return 2;
        }
        return run_cycles(cycles);
    }
    if (argc != 1) {
        fprintf(stderr, "usage: %s [--cycles N]\n", argv[0]);
        return 2;
    }
    printf("kernel tier: %s (cpu features: %s)\n", lstmrt_kernel_tier(), lstmrt_cpu_features());
    RUN(test_pool_state_errors);
    RUN(test_status_strings);
    RUN(test_model_properties);
    RUN(test_predict_vs_reference);
    RUN(test_stream_invariants);
    RUN(test_wide_batch);
    RUN(test_lengths_match_unpadded);
    RUN(test_final_only_long_sequence);
    RUN(test_special_values);
    RUN(test_activation_special_values);
    RUN(test_prelu_special_values);
    RUN(test_model_create_errors);
    RUN(test_activation_alpha_errors);
    RUN(test_out_of_memory);
    RUN(test_embedding_id_changed_during_call);
    RUN(test_sweep_policy);
    RUN(test_teams);
    RUN(test_team_wake);
    RUN(test_predict_errors);
    RUN(test_stream_errors);
    RUN(test_probes);
    RUN(test_model_file_round_trip);
    RUN(test_model_file_version_1);
    RUN(test_layer_weight_floats);
    RUN(test_model_file_load_file);
    RUN(test_model_file_errors);
    RUN(test_model_file_corruption);
    printf("checks: %ld\n", checks_run);
    printf("%d passed, %d failed\n", cases_passed, cases_failed);
    return cases_failed == 0 ? 0 : 1;
}
