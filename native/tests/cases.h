/* The test cases of test_lstmrt, one file per topic; test_lstmrt.c runs them. */
#ifndef LSTMRT_TESTS_CASES_H
#define LSTMRT_TESTS_CASES_H

/* test_predict.c */
void test_model_properties(void);
void test_predict_vs_reference(void);
void test_wide_batch(void);
void test_lengths_match_unpadded(void);
void test_final_only_long_sequence(void);
void test_special_values(void);
void test_activation_special_values(void);
void test_prelu_special_values(void);

/* test_streams.c */
void test_stream_invariants(void);

/* test_errors.c */
void test_model_create_errors(void);
void test_activation_alpha_errors(void);
void test_out_of_memory(void);
void test_embedding_id_changed_during_call(void);
void test_predict_errors(void);
void test_stream_errors(void);
void test_pool_state_errors(void);
void test_status_strings(void);
void test_probes(void);

/* test_model_file.c */
void test_model_file_round_trip(void);
void test_model_file_version_1(void);
void test_layer_weight_floats(void);
void test_model_file_load_file(void);
void test_model_file_errors(void);
void test_model_file_corruption(void);

/* test_teams.c */
void test_sweep_policy(void);
void test_teams(void);
void test_team_wake(void);

/* test_cycles.c: the valgrind workload (test_lstmrt --cycles N); returns the exit status */
int run_cycles(long cycles);

#endif
